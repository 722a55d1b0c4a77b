"""The health check a new generation must pass before the switch."""

from __future__ import annotations

import json
import os
import re
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


# One interpreter imports everything (fast), but imports can disturb each other: importing pip
# switches setuptools' distutils shim off, and setuptools then refuses the stdlib distutils. So a
# module that fails here counts only if it also fails alone, in a fresh interpreter.
_IMPORT_ALL = """
import importlib, json, subprocess, sys, traceback
names = json.loads(sys.argv[1])
bad = {}
for name in names:
    try:
        importlib.import_module(name)
    except BaseException:
        bad[name] = traceback.format_exc(limit=3)
for name in list(bad):
    alone = subprocess.run(
        [sys.executable, "-c", sys.argv[2], name, sys.argv[1]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
    )
    if alone.returncode in (0, 3):
        del bad[name]
        if alone.returncode == 3:
            print(alone.stdout.strip())
    else:
        bad[name] = alone.stdout[-2000:]
for name, tb in bad.items():
    print(f"cannot import {name}:\\n{tb}")
sys.exit(1 if bad else 0)
"""

# A module that needs a module no distribution of the venv provides is not a broken install:
# uWSGI's ``uwsgidecorators`` imports ``uwsgi``, which exists only inside the uWSGI server. A
# module of the venv itself that is missing still fails the check.
_IMPORT_ALONE = """
import importlib, json, sys
try:
    importlib.import_module(sys.argv[1])
except ModuleNotFoundError as exc:
    top = (exc.name or "").split(".")[0]
    if not top or top in json.loads(sys.argv[2]):
        raise
    print(f"skipped {sys.argv[1]}: it needs {top}, which nothing in this venv provides")
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


def health_check(
    venv: Path,
    *,
    modules: list[str],
    command: str | None,
    env: Mapping[str, str],
    user: str | None = "nobody",
) -> None:
    """Import ``modules`` with the venv's python, or run ``command``; raise InstallError on failure.

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
        argv = [str(python), "-c", _IMPORT_ALL, json.dumps(modules), _IMPORT_ALONE]
        what = "import check"
    # No lock descriptor for the check: a check command may leave a background process behind,
    # which would hold the destination's lock for as long as it lives.
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
