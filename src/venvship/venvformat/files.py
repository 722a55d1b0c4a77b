"""Reading a venv's files without following symlinks: ``verify`` and ``status`` run as root on
venvs whose folders a user may have changed, and must never read, hash or stat a file a
symlink leads to (another venv's, or a root-only one outside). Every path is opened one
component at a time from the venv's root, each with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..errors import InstallError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# pyvenv.cfg's "version" (venv) or "version_info" (virtualenv): written by the interpreter, never
# by a layer (layerformat refuses it), so it names the venv's site-packages where a glob of
# lib/python3*/ would take whichever folder an artifact ships first.
_VERSION = re.compile(r"^\s*version(?:_info)?\s*=\s*3\.([0-9]+)\b", re.MULTILINE)


def open_beneath(top: Path, rel: str, *, directory: bool = False) -> int:
    """Return a file descriptor of ``rel`` (a ``/``-separated path relative to ``top``), opened
    without following a symlink in ``top`` itself or in any component; raises OSError (ELOOP or
    ENOTDIR for a symlink) otherwise. A non-directory is opened non-blocking (a FIFO never hangs)."""
    fd = os.open(top, _DIR)
    try:
        parts = [p for p in rel.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise OSError(f"{rel}: not a plain path")
        for part in parts[:-1] if parts else []:
            inner = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = inner
        if not parts:
            return os.dup(fd)
        flags = _DIR if directory else os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        return os.open(parts[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)


def read_beneath(top: Path, rel: str, *, limit: int) -> bytes:
    """Return at most ``limit`` + 1 bytes of regular file ``rel`` under ``top`` (see :func:`open_beneath`)."""
    with os.fdopen(open_beneath(top, rel), "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(f"{rel}: not a regular file")
        return fh.read(limit + 1)


def is_dir_beneath(top: Path, rel: str) -> bool:
    """Return whether ``rel`` is a directory under ``top`` reached through no symlink."""
    try:
        os.close(open_beneath(top, rel, directory=True))
    except OSError:
        return False
    return True


def site_rel(venv: Path) -> str:
    """Return the venv's site-packages relative to it, as its pyvenv.cfg's Python version names it
    (``lib/python3.11t/...`` for a free-threaded build whose plain folder does not exist)."""
    try:
        found = _VERSION.search(read_beneath(venv, "pyvenv.cfg", limit=1 << 16).decode("utf-8", "replace"))
    except OSError as exc:
        raise InstallError(f"{venv}/pyvenv.cfg: cannot read ({exc.strerror or exc})") from exc
    if found is None:
        raise InstallError(f"{venv}/pyvenv.cfg: names no Python 3 version")
    for name in (f"lib/python3.{found[1]}", f"lib/python3.{found[1]}t"):
        if is_dir_beneath(venv, f"{name}/site-packages"):
            return f"{name}/site-packages"
    raise InstallError(f"{venv}: no lib/python3.{found[1]}/site-packages")


def dist_info_folders(fd: int) -> list[str]:
    """Return the ``*.dist-info`` folders in the open folder ``fd``, sorted; a symlink (a distro
    package linked in, or anything pointing out of the venv) is not one."""
    return sorted(
        n
        for n in os.listdir(fd)
        if n.endswith(".dist-info") and stat.S_ISDIR(os.stat(n, dir_fd=fd, follow_symlinks=False).st_mode)
    )
