"""Atomic writes and advisory file locks (stdlib only; used by both sides)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

from ._log import activity
from .errors import DiskFullError, VenvshipError


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def mark_used(path: Path) -> None:
    """Set ``path``'s mtime to now: the build cache keeps what recent builds used (``venvship cache prune``)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user's counts too): its temp files are in use."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LockTimeout(VenvshipError):
    """Another process holds the lock for longer than the timeout."""


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float | None = None, shared: bool = False) -> Iterator[int]:
    """Hold an exclusive (or ``shared``) ``flock`` on ``path`` (created if missing); wait at most ``timeout`` s.

    Yields the lock's descriptor: children that inherit it (:func:`venvship._process.lend_fds`)
    hold the lock with it until they exit.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)  # never through a planted symlink
    try:
        # flock() needs no write access: a file others can open is a lock any user can hold.
        # A lock file made before this rule, or by another user, is made private again.
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        deadline = None if timeout is None else time.monotonic() + timeout
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        with contextlib.ExitStack() as waiting:
            announced = False
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if deadline is not None and time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"{path}: still locked by another run{_holder(fd)} after {timeout:g}s"
                        ) from exc
                    if not announced:  # the first wait: say why nothing happens
                        waiting.enter_context(activity(f"waiting for {path}, which another run holds"))
                        announced = True
                    time.sleep(0.05)
        with contextlib.suppress(OSError):  # the holder's PID, for whoever gives up waiting
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """Return " (PID n)" naming the process that wrote its PID into the lock file, or ""."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (PID {text})" if text.isdigit() else ""


def free_bytes(path: str | os.PathLike[str] | None) -> int | None:
    """Return the bytes free on the file system of ``path`` (or of its nearest existing parent);
    None when it cannot be told.

    Example: ``free_bytes("/var/cache/venvship")``
    """
    if path is None:
        return None
    here = Path(os.path.abspath(path))
    for folder in (here, *here.parents):
        try:
            st = os.statvfs(folder)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


@contextlib.contextmanager
def disk_space(*paths: Path, needed: int | None = None) -> Iterator[None]:
    """Turn a full file system met in the block (ENOSPC here, or "No space left on device" in a
    child's error) into one DiskFullError naming the path written, or else the fullest of
    ``paths``, with its free bytes and ``needed`` where known.

    Example: ``with disk_space(cache.root, needed=size): pull(...)``
    """
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise _disk_full((exc.filename, exc.filename2), paths, needed) from exc
    except VenvshipError as exc:
        if isinstance(exc, DiskFullError) or _NO_SPACE not in str(exc):
            raise
        raise _disk_full((), paths, needed) from exc


_NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device", as children print it too


def disk_full_error(exc: OSError) -> DiskFullError:
    """Return the DiskFullError for an ENOSPC met where no :func:`disk_space` block was open."""
    return _disk_full((exc.filename, exc.filename2), (), None)


def _disk_full(names: tuple[object, ...], paths: tuple[Path, ...], needed: int | None) -> DiskFullError:
    """Name the fullest of the files the error names (a copy names its source and its target),
    else of ``paths``."""
    named = [Path(n) for n in names if isinstance(n, (str, os.PathLike))]
    candidates = named or list(paths) or [Path("/")]
    path = min(candidates, key=lambda p: free_bytes(p) or 0)
    return DiskFullError(str(path), free=free_bytes(path), needed=needed)
