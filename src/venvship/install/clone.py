"""Incremental generations: what a new generation can take over from the live one by hard links.

An upgrade mostly changes a few wheels of a large lock. Instead of installing every wheel again,
the new generation gets a fresh venv skeleton and hard links to the live generation's files of
every distribution whose wheel is the same in both locks (with their ``.pyc`` files, see
hardlinks.py); the installer then installs only the other wheels, with the options of a full
install. Distributions that are gone or changed are simply not taken over: nothing is uninstalled.

Hard links share inodes with the live generation, so nothing may ever write into a linked file:

- a path that a wheel to install would write (its files, scripts, entry-point scripts, data) is
  not linked at all, so no installer ever opens a shared inode, whatever way it writes;
- a bin/ file naming the live generation is written as a new file naming the new one, and the
  RECORD files that list it are replaced through a temp file and a rename, never edited in place;
- ``.pyc`` files are only ever replaced by a rename (py_compile, importlib).

A file of a kept distribution that no longer matches its RECORD (missing, another size, or
modified after the live generation was made and hashing differently) is not trusted: that
distribution is installed again from its wheel, so the result is what a fresh install makes.
"""

from __future__ import annotations

import base64
import configparser
import csv
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

from .._log import logger
from ..artifact import Manifest, VenvConfig, Wheel
from ..errors import ArtifactError, InstallError
from ..oci.layout import Layout
from .generations import Generations, State
from .venvs import site_packages

# pyvenv.cfg keys that name the interpreter; a change means a fresh venv would differ.
_PYTHON_KEYS = ("home", "implementation", "version", "version_info", "executable", "base-executable")


@dataclass(frozen=True)
class Plan:
    """What a new generation takes from the live one, and what is left to install."""

    live: Path  # the live generation
    kept: tuple[str, ...]  # distributions taken over, by name
    paths: tuple[str, ...]  # their files, relative to the venv (pycs are found beside their sources)
    install: tuple[Wheel, ...]  # wheels of the new lock to install (new, changed or drifted)
    removed: tuple[str, ...]  # dist-info folders of the live generation whose distribution is gone


def canonical_name(name: str) -> str:
    """Return a distribution name normalised as PEP 503 does (``Foo_Bar`` → ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def live_config(cache: Layout, state: State) -> VenvConfig | None:
    """Return the config of the artifact ``state`` was made from, read from the blob cache (or None)."""
    try:
        manifest = Manifest.from_bytes(cache.read_blob(state.digest), where=state.digest)
        return VenvConfig.from_json(json.loads(cache.read_blob(manifest.config.digest)))
    except (ArtifactError, OSError, ValueError, KeyError, TypeError):
        return None


def refusal(
    *, live: State, live_config: VenvConfig | None, config: VenvConfig, tool_version: str
) -> str | None:
    """Return why a generation of ``config`` cannot be cloned from ``live``, or None when it can."""
    if live.adopted:
        return "the live venv was not made by venv-pull"
    if live_config is None:
        return f"the live generation's artifact {live.digest} is not in the blob cache"
    tool = config.install_tool
    if live_config.install_tool != tool:
        return f"the install tool changed ({live_config.install_tool} → {tool})"
    if live.tools.get(tool) != tool_version:
        return f"the {tool} version changed ({live.tools.get(tool)} → {tool_version})"
    before, after = live_config.python, config.python
    if (before.executable, before.abi) != (after.executable, after.abi):
        return f"the python changed ({before.executable} {before.abi} → {after.executable} {after.abi})"
    return None


def plan(
    live: Path,
    staging: Path,
    *,
    live_lock: Sequence[Wheel],
    lock: Sequence[Wheel],
    created: float,
    cache: Layout,
) -> Plan:
    """Return what the fresh venv ``staging`` can take from the live generation ``live`` for ``lock``.

    ``created``: when the live generation was made (a file modified later is hashed again);
    ``cache``: holds the wheels of ``lock``. Writes nothing. Raises InstallError when ``live``
    cannot be cloned (another interpreter, another layout): the caller then installs everything.

    Example: ``plan(live, staging, live_lock=old.lock, lock=new.lock, created=state.created, cache=cache)``
    """
    live_site, site = site_packages(live), site_packages(staging)
    rel_site = site.relative_to(staging).as_posix()
    if live_site.relative_to(live).as_posix() != rel_site:
        raise InstallError(f"{live}: its site-packages is not at {rel_site}")
    before, after = _python_of(live), _python_of(staging)
    if before != after:
        raise InstallError(f"{live}: made by another interpreter ({before} → {after})")

    old = {canonical_name(w.name): w for w in live_lock}
    infos = _dist_infos(live_site)
    kept: dict[str, tuple[Wheel, list[_Row]]] = {}
    install: list[Wheel] = []
    for wheel in lock:
        key = canonical_name(wheel.name)
        prior, found = old.get(key), infos.get(key, [])
        rows = None
        if prior is not None and prior.sha256 == wheel.sha256 and len(found) == 1:
            info, version = found[0]
            if version.lower() == wheel.version.lower():
                rows = _record_rows(live_site / info / "RECORD", rel_site)
        if rows is None:
            install.append(wheel)
        else:
            kept[key] = (wheel, rows)

    # Paths the wheels to install will write are not cloned; a kept distribution whose files
    # drifted joins them (and may bring more such paths: repeat until nothing changes).
    checked: dict[str, bool] = {}
    live_s = os.path.join(live, "")
    while True:
        targets = _Targets(cache, install, rel_site=rel_site)
        drifted = [
            key
            for key, (_, rows) in kept.items()
            if not all(_intact(live_s, row, created, checked) for row in rows if row.path not in targets)
        ]
        if not drifted:
            break
        for key in drifted:
            wheel = kept.pop(key)[0]
            logger.info("%s: files changed since it was installed; installing it again", wheel.filename)
            install.append(wheel)

    paths = sorted({row.path for _, rows in kept.values() for row in rows if row.path not in targets})
    names = {canonical_name(w.name) for w in lock}
    removed = sorted(
        info[: -len(".dist-info")] for key, found in infos.items() if key not in names for info, _ in found
    )
    return Plan(
        live=live,
        kept=tuple(sorted(w.name for w, _ in kept.values())),
        paths=tuple(paths),
        install=tuple(install),
        removed=tuple(removed),
    )


class _Row(NamedTuple):
    path: str  # relative to the venv
    digest: str  # RECORD hash field ("" for RECORD itself)
    size: int  # -1: not given


def _python_of(venv: Path) -> dict[str, str]:
    """Return the interpreter keys of ``venv``'s pyvenv.cfg."""
    out = {}
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() in _PYTHON_KEYS:
            out[key.strip().lower()] = value.strip()
    return out


def _dist_infos(site: Path) -> dict[str, list[tuple[str, str]]]:
    """Return canonical name → [(dist-info folder, version)] of the real dist-info folders in ``site``.

    Symlinked ones (distro packages, linked again by the caller) are left out.
    """
    out: dict[str, list[tuple[str, str]]] = {}
    with os.scandir(site) as entries:
        for entry in entries:
            if entry.name.endswith(".dist-info") and entry.is_dir(follow_symlinks=False):
                name, _, version = entry.name[: -len(".dist-info")].rpartition("-")
                out.setdefault(canonical_name(name), []).append((entry.name, version))
    return out


def _record_rows(record: Path, rel_site: str) -> list[_Row] | None:
    """Return the rows of ``record`` as venv-relative paths; None if unreadable or naming a path outside."""
    try:
        text = record.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    rows = []
    prefix = rel_site + "/"
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        path = row[0]
        # Most rows are plain relative paths (no "."/".." parts, no empty ones): normpath only the rest.
        if path.startswith((".", "/")) or "/." in path or "//" in path or path.endswith("/"):
            path = posixpath.normpath(prefix + path)
            if path.startswith(("/", "../")) or path in (".", ".."):
                return None
        else:
            path = prefix + path
        digest = row[1] if len(row) > 1 else ""
        size = int(row[2]) if len(row) > 2 and row[2].isdigit() else -1
        rows.append(_Row(path, digest, size))
    return rows


class _Targets:
    """The venv-relative paths that installing ``wheels`` writes (``in``: a path, or one below a folder)."""

    def __init__(self, cache: Layout, wheels: Iterable[Wheel], *, rel_site: str) -> None:
        paths: set[str] = set()
        for wheel in wheels:
            paths |= wheel_targets(cache.blob_path(wheel.digest), rel_site=rel_site)
        self.files = {p for p in paths if not p.endswith("/")}
        self.folders = tuple(p for p in paths if p.endswith("/"))

    def __contains__(self, path: str) -> bool:
        return path in self.files or bool(self.folders and path.startswith(self.folders))


def _intact(venv: str, row: _Row, created: float, checked: dict[str, bool]) -> bool:
    """Return True if the file of ``row`` in ``venv`` (ending in "/") still matches its RECORD row."""
    if row.path in checked:
        return checked[row.path]
    path = venv + row.path
    ok = False
    try:
        st = os.lstat(path)
        ok = stat.S_ISREG(st.st_mode) and (row.size < 0 or st.st_size == row.size)
        # Files keep the mtime of when they were installed (or older: reused sources). A later one
        # was modified since; the same size is no proof of the same content then.
        if ok and row.digest and st.st_mtime > created:
            ok = _hash(path, row.digest)
    except OSError:
        ok = False
    checked[row.path] = ok
    return ok


def _hash(path: str, field: str) -> bool:
    algo, _, expected = field.partition("=")
    if algo not in hashlib.algorithms_guaranteed:
        return False
    digest = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() == expected


def wheel_targets(wheel: Path, *, rel_site: str) -> set[str]:
    """Return the venv-relative paths installing ``wheel`` writes (a path ending in ``/``: all below).

    Its files (purelib/platlib into site-packages, ``.data/scripts`` into bin/, ``.data/data`` into
    the venv, ``.data/headers`` somewhere under include/), and its entry-point scripts in bin/.
    """
    out: set[str] = set()
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.endswith("/"):
                    continue
                top, _, rest = name.partition("/")
                if top.endswith(".data") and rest:
                    scheme, _, rest = rest.partition("/")
                    if scheme in ("purelib", "platlib"):
                        out.add(_norm(rel_site, rest))
                    elif scheme == "scripts":
                        out.add(_norm("bin", rest))
                    elif scheme == "data":
                        out.add(_norm("", rest))
                    elif scheme == "headers":
                        out.add("include/")  # pip and uv differ in the folder; rare: take it all
                    continue
                out.add(_norm(rel_site, name))
                if top.endswith(".dist-info") and rest == "entry_points.txt":
                    out.update(_norm("bin", s) for s in _scripts(zf.read(name).decode("utf-8", "replace")))
    except (OSError, zipfile.BadZipFile) as exc:
        raise InstallError(f"{wheel}: cannot read the wheel ({exc})") from exc
    return out


def _norm(base: str, rel: str) -> str:
    return posixpath.normpath(posixpath.join(base, rel)) if base else posixpath.normpath(rel)


def _scripts(entry_points: str) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # script names keep their case
    try:
        parser.read_string(entry_points)
    except configparser.Error:
        return []
    return [
        name
        for section in ("console_scripts", "gui_scripts")
        if parser.has_section(section)
        for name in parser.options(section)
    ]


@dataclass(frozen=True)
class Origin:
    """The live generation a new one is cloned from, and the artifact it was made from."""

    venv: Path
    state: State
    config: VenvConfig


def origin(gens: Generations, live: State, *, cache: Layout, config: VenvConfig) -> Origin | None:
    """Return the live generation to clone a generation of ``config`` from, or None (logged why not)."""
    before = live_config(cache, live)
    tool = next((w.version for w in config.tools if w.name.lower() == config.install_tool), "")
    reason = refusal(live=live, live_config=before, config=config, tool_version=tool)
    if reason is not None or before is None:
        logger.info("installing every wheel: %s", reason)
        return None
    return Origin(venv=gens.path(live.generation), state=live, config=before)


def plan_from(origin: Origin, staging: Path, *, lock: Sequence[Wheel], cache: Layout) -> Plan:
    """Return the plan to clone ``origin`` into the fresh venv ``staging`` for ``lock``; log it."""
    made = plan(
        origin.venv,
        staging,
        live_lock=origin.config.lock,
        lock=lock,
        created=origin.state.created,
        cache=cache,
    )
    logger.info(
        "incremental generation: %d distributions (%d files) linked from %s, %d to install%s",
        len(made.kept),
        len(made.paths),
        origin.state.generation,
        len(made.install),
        f", {len(made.removed)} gone: {', '.join(made.removed)}" if made.removed else "",
    )
    return made
