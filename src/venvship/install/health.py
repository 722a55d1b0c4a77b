"""The health check a new generation must pass before the switch."""

from __future__ import annotations

import configparser
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from .._log import logger
from .._process import run
from ..errors import InstallError, ProcessError
from ..venvformat.record import read_rows


def canonical_name(name: str) -> str:
    """Return a distribution name as PEP 503 compares them (``Foo_Bar.baz`` → ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requested_names(requirements: Sequence[str]) -> set[str]:
    """Return the canonical distribution names of PEP 508 ``requirements`` (``keystone==30.0.0``,
    ``gamma @ git+https://…``); stdlib only, so the name is read, not the whole requirement."""
    names = set()
    for line in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match:
            names.add(canonical_name(match.group(1)))
    return names


def top_level_modules(site: Path, names: set[str] | None = None) -> list[str]:
    """Return the importable top-level names of the dists in ``site`` (``names``: only those dists,
    as canonical names)."""
    found: set[str] = set()
    for info in site.glob("*.dist-info"):
        dist = canonical_name(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
        if names is not None and dist not in names:
            continue
        top = info / "top_level.txt"
        if top.is_file():
            found.update(line.strip() for line in top.read_text().splitlines())
            continue
        if (info / "RECORD").is_file():
            for row in read_rows(info / "RECORD", site_rel=""):
                path = row.path
                if "/" in path:
                    found.add(path.split("/", 1)[0])  # a package folder ("..": scripts, filtered)
                elif path.endswith(".py"):
                    found.add(path[:-3])
                elif path.endswith(".so"):
                    found.add(path.split(".", 1)[0])
    return sorted(
        n
        for n in found
        if n.isidentifier() and n != "__pycache__" and not n.endswith((".dist-info", ".data"))
    )


# What the check loads, in one interpreter (#23): the recipe's own top-level packages (imported:
# their imports pull in what they use first), the modules its console scripts name (found, not run:
# running them imports a service's whole stack, compiled in memory when the venv has no bytecode),
# and every extension module of site-packages (loaded, not run: a missing shared library or a
# wrong ABI fails in dlopen or in the init function, before any of the module's own code). So
# the check costs about the same with or without bytecode.
#
# Imports can disturb each other: importing pip switches setuptools' distutils shim off, and
# setuptools then refuses the stdlib distutils. So a failure here counts only if it happens
# again alone, in a fresh interpreter.
_CHECK = """
import importlib.machinery, importlib.util, json, os, re, sys, time
out = sys.stdout  # the report's, whatever an import makes of sys.stdout
todo = json.loads(sys.argv[1])
started = time.perf_counter()
suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
tagged = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[.](cpython|pypy|graalpy)[^.]*[.]so")
bad = {}

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    try:
        importlib.util.module_from_spec(spec)  # dlopen and the init function, not the body
    except ImportError as exc:
        if "does not define module export function" in str(exc):
            return 0  # a plain shared library (dlopen found all it needs): no module of its own
        raise
    return 1

def failure():
    import traceback

    return traceback.format_exc(limit=3)

def candidates():
    # Only folders a module can live in; vendored libraries (``foo.libs``) load with the extension
    # modules that need them. Without a list of the venv's files, every folder of its sites is read.
    if todo["extensions"] is not None:
        for path in todo["extensions"]:
            for site in todo["sites"]:
                if path.startswith(site + os.sep):
                    *parts, file = path[len(site) + 1:].split(os.sep)
                    if all(part.isidentifier() and part != "__pycache__" for part in parts):
                        yield os.path.dirname(path), parts, file
        return
    for site in todo["sites"]:
        for folder, dirs, files in os.walk(site):
            rel = os.path.relpath(folder, site)
            dirs[:] = sorted(d for d in dirs if d.isidentifier() and d != "__pycache__")
            for file in sorted(files):
                yield folder, [] if rel == "." else rel.split(os.sep), file

ours = set(todo["ours"])
trees = todo["bytecode"]
if trees:
    # A venv without bytecode: its modules read the bytecode of the store's copy of their layer
    # (the same file, unpacked, that a venv with bytecode links), so the check compiles nothing.
    import importlib._bootstrap_external as bx
    own_cache, root = bx.cache_from_source, todo["root"] + os.sep

    def cache_from_source(path, debug_override=None, *, optimization=None):
        own = own_cache(path, debug_override, optimization=optimization)
        parts = path[len(root):].split(os.sep) if path.startswith(root) else ()
        for tree in trees.get(parts[3].split(".")[0], ()) if len(parts) > 3 else ():
            pyc = own_cache(os.path.join(tree, *parts), debug_override, optimization=optimization)
            if os.path.isfile(pyc):
                return pyc
        return own

    bx.cache_from_source = cache_from_source
for name in todo["import"]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top and top not in ours:  # no fresh interpreter would find it either
            print(f"skipped {name}: it needs {top}, which nothing in this venv provides", file=out)
            continue
        bad["import", name, ""] = failure()
    except BaseException:
        bad["import", name, ""] = failure()
imported = time.perf_counter()
for name in todo["find"]:
    try:
        found = importlib.util.find_spec(name) is not None
    except BaseException:
        found = False
    if not found:
        bad["find", name, ""] = f"no module named {name!r} (a console script of the recipe runs it)"
loaded, found_all = 0, time.perf_counter()
for folder, parts, file in candidates():
    suffix = next((s for s in suffixes if file.endswith(s)), None)
    stem = file[: -len(suffix)] if suffix else ""
    if not stem.isidentifier():
        if tagged.fullmatch(file):
            wanted = ", ".join(importlib.machinery.EXTENSION_SUFFIXES)
            path = os.path.join(folder, file)
            bad["abi", ".".join(parts + [file.split(".")[0]]), path] = (
                f"{path} is built for another Python; this one loads {wanted}"
            )
        continue
    name = ".".join(parts + [stem])
    if name in sys.modules:
        loaded += 1  # imported above already
        continue
    try:
        loaded += load(name, os.path.join(folder, file))
    except BaseException as exc:
        bad["ext", name, os.path.join(folder, file)] = f"{type(exc).__name__}: {exc}"
walked = time.perf_counter()
if bad:
    import subprocess
for key in list(bad):
    kind, name, path = key
    if kind == "abi":
        continue  # built for another Python: no fresh interpreter changes that
    alone = subprocess.run(
        [sys.executable, "-c", todo["alone"], kind, name, path, json.dumps(todo["ours"])],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
    )
    if alone.returncode in (0, 3):
        del bad[key]
        if alone.returncode == 3:
            print(alone.stdout.strip(), file=out)
    else:
        bad[key] = alone.stdout[-2000:]
what = {"import": "cannot import", "find": "cannot find"}
what["ext"] = what["abi"] = "cannot load extension module"
for (kind, name, _), tb in bad.items():
    print(f"{what[kind]} {name}:\\n{tb}", file=out)
if not bad:
    print(f"checked: {len(todo['import'])} packages imported, {len(todo['find'])} console script"
          f" modules found, {loaded} extension modules loaded (imports {imported - started:.2f} s,"
          f" finds {found_all - imported:.2f} s, extension modules {walked - found_all:.2f} s)", file=out)
# Not sys.exit: tearing down every module the imports loaded costs more than the rest of the
# check's own work (keystone: 0.03 s), and no atexit hook or thread of the artifact's gets to run.
out.flush()
for stream in (sys.stdout, sys.stderr):  # what the artifact's code wrote, as far as it can be
    try:
        stream.flush()
    except Exception:
        pass
os._exit(1 if bad else 0)
"""

# A module that needs a module no distribution of the venv provides is not a broken install:
# uWSGI's ``uwsgidecorators`` imports ``uwsgi``, which exists only inside the uWSGI server. A
# module of the venv itself that is missing still fails the check.
_ALONE = """
import importlib, importlib.util, json, sys
kind, name, path, ours = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if kind == "ext":
    try:
        importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    except BaseException as exc:
        print(f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    sys.exit(0)
try:
    if kind == "find":
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    else:
        importlib.import_module(name)
except ModuleNotFoundError as exc:
    top = (exc.name or "").split(".")[0]
    if not top or top in ours:
        raise
    print(f"skipped {name}: it needs {top}, which nothing in this venv provides")
    sys.exit(3)
"""


def check_identity(user: str | None) -> tuple[int, int] | None:
    """Return (uid, gid) the health check runs as: ``user`` when this process is root, else None
    (run as this process's own user, who can harm only what it owns anyway)."""
    if user is None or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise InstallError(f"--check-user {user}: no such user on this host") from exc
    return entry.pw_uid, entry.pw_gid


@dataclass(frozen=True)
class Loads:
    """What the import check loads: ``imports`` (top-level packages, imported), ``finds`` (the
    modules console scripts run, found only), every extension module under ``sites``, and
    ``ours``: every top-level name the venv provides (an import that needs another is skipped)."""

    imports: tuple[str, ...]
    finds: tuple[str, ...]
    sites: tuple[Path, ...]
    ours: tuple[str, ...]
    # A venv without bytecode: top-level name → the store trees of the layers that hold it,
    # whose bytecode the check reads instead of compiling (layout: the venv's, from its root).
    bytecode: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The files under ``sites`` that may be extension modules (``*.so``), when the installer knows
    # them (it linked every file): the check then reads no folder. None: it walks the sites.
    extensions: tuple[str, ...] | None = None


def script_modules(site: Path, names: set[str]) -> list[str]:
    """Return the modules the console and GUI scripts of the dists ``names`` (canonical) run."""
    found: set[str] = set()
    for info in site.glob("*.dist-info"):
        dist = canonical_name(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
        points = info / "entry_points.txt"
        if dist not in names or not points.is_file():
            continue
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # names keep their case
        try:
            parser.read_string(points.read_text(errors="replace"))
        except configparser.Error as exc:
            raise InstallError(f"{points}: cannot read it: {exc}") from exc
        for section in ("console_scripts", "gui_scripts"):
            if parser.has_section(section):
                for value in parser[section].values():
                    module = value.split(":", 1)[0].strip()
                    if all(part.isidentifier() for part in module.split(".")):
                        found.add(module)
    return sorted(found)


def health_check(
    venv: Path,
    *,
    loads: Loads,
    command: str | None,
    env: Mapping[str, str],
    user: str | None = "nobody",
) -> None:
    """Run the import check of ``loads`` with the venv's python, or ``command``; raise InstallError
    on failure, log what the import check loaded and how long it took.

    The artifact's code runs here, so as root it runs as ``user`` (default ``nobody``), who can
    read the new generation but write nothing of it; ``user=None`` keeps this process's user. It
    runs for at most ``$VENVSHIP_TIMEOUT_HEALTH`` seconds (default 600), then its group is killed.
    """
    python = venv / "bin" / "python"
    identity = check_identity(user)
    # The check runs "inside" the new venv: its bin/ first on PATH, as activate would do; an
    # unprivileged user gets no home of root's to read or write.
    env = {**env, "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
    if identity is not None:
        env.update({"HOME": "/nonexistent", "USER": str(user), "LOGNAME": str(user)})
    if command:
        # A shell line, as Ansible users write it (``mycli --version && python -c 'import x'``).
        argv = ["/bin/sh", "-c", command]
        what = f"check command {command!r}"
    else:
        todo = {
            "import": loads.imports,
            "find": loads.finds,
            "sites": [str(site) for site in loads.sites],
            "ours": loads.ours,
            "alone": _ALONE,
            "bytecode": dict(loads.bytecode),
            "extensions": loads.extensions,
            "root": str(venv),
        }
        argv = [str(python), "-c", _CHECK, json.dumps(todo)]
        what = "import check"
    # No lock descriptor for the check: a check command may leave a background process behind,
    # which would hold the destination's lock for as long as it lives.
    started = time.monotonic()
    try:
        proc = run(argv, env=env, check=False, cwd=Path("/"), pass_fds=(), user=identity, kind="health")
    except ProcessError as exc:
        if exc.returncode == 127 and identity is not None:
            raise InstallError(
                f"health check: {user} cannot run {python} ({exc.output.strip()}); make the interpreter "
                "and the venv's folders readable by it, or pass --check-user root"
            ) from exc
        raise InstallError(f"health check failed ({what}): {exc.output.strip().splitlines()[-1]}") from exc
    for line in proc.stdout.splitlines():
        if line.startswith("skipped ") and proc.returncode == 0:
            logger.warning("health check: %s", line)
    if proc.returncode != 0:
        raise InstallError(
            f"health check failed ({what}, exit {proc.returncode}):\n{proc.stdout.strip()[-3000:]}"
        )
    for line in proc.stdout.splitlines():
        if line.startswith("checked: "):
            logger.debug("health check: %s, in %.2f s", line[len("checked: ") :], time.monotonic() - started)
