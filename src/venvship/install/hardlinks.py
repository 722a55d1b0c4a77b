"""Hard-link a clone plan's files from the live generation into a new one, beside the installer.

The files of the kept distributions are linked in a background thread while pip or uv installs
the other wheels into the same venv: the two never touch the same path (the plan leaves out
every path a wheel to install writes), and a kept distribution's dist-info folder appears in
one rename, complete, so the installer never sees half of one. Linking is mostly system calls,
the installer another process: together they take about the time of the longer one.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import threading
from pathlib import Path
from typing import Iterator

from ..errors import InstallError
from .bytecode import link_or_copy
from .clone import Plan
from .venvs import fix_records, site_packages

_MAX_SCRIPT = 4 << 20  # as relocate(): larger bin/ files are binaries that name no venv path
_TMP = ".venvship-tmp"


@contextlib.contextmanager
def linking(plan: Plan, staging: Path, *, final: Path) -> Iterator[None]:
    """Link ``plan``'s files into ``staging`` in a thread while the body runs; fix RECORDs after.

    ``final``: the name ``staging`` gets once complete; bin/ files naming the live generation are
    written anew naming it (RECORD hashes fixed to match). Raises InstallError if linking failed.

    Example: ``with linking(plan, staging, final=final): installer.install(job)``
    """
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["rewritten"] = link_files(plan, staging, final=final)
        except BaseException as exc:  # reported in the main thread, below
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="venvship-hardlinks", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()  # never leave it writing into a folder the caller may remove
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise InstallError(f"linking the files of {plan.live} failed: {error}") from error
    rewritten = outcome.get("rewritten")
    if isinstance(rewritten, dict) and rewritten:
        fix_records(site_packages(staging), rewritten)


def link_files(plan: Plan, staging: Path, *, final: Path) -> dict[Path, bytes]:
    """Link ``plan.paths`` (and the pycs of its sources) from ``plan.live`` into ``staging``.

    Returns the bin/ files written anew (path → bytes), whose RECORD rows need new hashes.
    """
    live_s, staging_s = os.fspath(plan.live), os.fspath(staging)
    before, after = os.fsencode(plan.live), os.fsencode(final)
    made: set[str] = set()
    rewritten: dict[Path, bytes] = {}
    sources: dict[str, set[str]] = {}  # folder → modules whose .py was linked
    infos: set[str] = set()  # dist-info folders, filled under a temp name first
    # .pth files last: the installer's interpreter runs them at its start, better with their modules.
    for rel in sorted(plan.paths, key=lambda p: p.endswith(".pth")):
        folder, name = posixpath.split(rel)
        target = folder
        info = _dist_info_of(folder)
        if info:
            infos.add(info)
            target = _tmp_name(info) + folder[len(info) :]
        if target not in made:
            os.makedirs(os.path.join(staging_s, target), exist_ok=True)
            made.add(target)
        src, dst = os.path.join(live_s, rel), os.path.join(staging_s, target, name)
        if folder == "bin":
            data = _relocated(src, before, after)
            if data is not None:
                _write_new(dst, data, mode=os.lstat(src).st_mode)
                rewritten[Path(dst)] = data
                continue
        link_or_copy(src, dst)
        if name.endswith(".py") and target == folder:
            sources.setdefault(folder, set()).add(name[:-3])
    for folder, modules in sources.items():
        cache = os.path.join(live_s, folder, "__pycache__")
        try:
            names = [n for n in os.listdir(cache) if n.endswith(".pyc") and n.split(".", 1)[0] in modules]
        except OSError:
            continue  # no bytecode there (made with --no-compile)
        if names:
            os.makedirs(os.path.join(staging_s, folder, "__pycache__"), exist_ok=True)
        for pyc in names:
            # FileExistsError: just written by the installer's interpreter (a .pth import), a valid
            # pyc and a file of its own.
            with contextlib.suppress(FileExistsError):
                link_or_copy(os.path.join(cache, pyc), os.path.join(staging_s, folder, "__pycache__", pyc))
    for folder in infos:
        os.rename(os.path.join(staging_s, _tmp_name(folder)), os.path.join(staging_s, folder))
    return rewritten


def _dist_info_of(folder: str) -> str:
    """Return the dist-info folder ``folder`` is or lies in (venv-relative), or ""."""
    parts = folder.split("/")
    for n, part in enumerate(parts):
        if part.endswith(".dist-info"):
            return "/".join(parts[: n + 1])
    return ""


def _tmp_name(folder: str) -> str:
    head, name = posixpath.split(folder)
    return posixpath.join(head, f".{name}{_TMP}")


def _relocated(path: str, before: bytes, after: bytes) -> bytes | None:
    """Return the bytes of bin/ file ``path`` with ``before`` replaced, or None if it does not name it."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_SCRIPT:
        return None
    with open(path, "rb") as fh:
        data = fh.read()
    if before not in data or b"\0" in data[:8192]:
        return None
    return data.replace(before, after)


def _write_new(path: str, data: bytes, *, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o7777)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode & 0o7777)  # the umask may have taken bits off
