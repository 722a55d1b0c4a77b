"""What venv-pull trusts on a host when it runs as root (DESIGN §5, trust rules), in the spirit of
sshd's StrictModes: a directory it writes into or reads code from must be owned by root and not
writable by group or others, and so must every folder above it (a root-owned, sticky folder such
as /tmp may sit above); the interpreter comes from the host, never from the artifact's say-so.

Run as another user, nothing here refuses: that user can only harm what it owns already.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Iterable

from ..errors import InstallError, TrustError

# What an interpreter's file is called (python, python3, python3.11, python3.13t).
_PYTHON_NAME = re.compile(r"python(3(\.[0-9]+)?t?)?")
# Where a bare interpreter name ("python3") is looked up: the system's, not the caller's PATH.
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def enforcing() -> bool:
    """Return True when the rules apply: this process runs as root."""
    return os.geteuid() == 0


def _describe(path: str, st: os.stat_result) -> str:
    try:
        import pwd

        owner = pwd.getpwuid(st.st_uid).pw_name
    except (KeyError, ImportError):
        owner = str(st.st_uid)
    return f"{path} (owner {owner}, mode {stat.S_IMODE(st.st_mode):04o})"


def check_tree(path: Path, *, what: str, sticky: bool = True) -> None:
    """Refuse ``path`` (and every folder above it) unless only root can change it.

    ``path`` itself: owned by root, not writable by group or others. Every folder above: owned by
    root, not writable by group or others unless sticky (a sticky, root-owned /tmp lets nobody
    rename what root made in it), and with ``sticky=False`` not even then (others may add entries
    there). Symlinks are followed, and the folders of their targets checked.
    """
    if not enforcing():
        return
    _check_links(path, what=what)
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as exc:
        raise InstallError(f"{path}: {what} cannot be checked ({exc.strerror or exc})") from exc
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise TrustError(
            f"{_describe(real, st)}: {what} must be owned by root and not writable by group or others"
        )
    parent = os.path.dirname(real)
    while True:
        pst = os.stat(parent)
        sticky_ok = sticky and bool(pst.st_mode & stat.S_ISVTX)  # others may add, not rename, entries
        if pst.st_uid != 0 or (pst.st_mode & 0o022 and not sticky_ok):
            raise TrustError(
                f"{_describe(parent, pst)}: a folder above {what} {real} must be owned by root and not "
                "writable by others"
            )
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def _check_links(path: Path, *, what: str) -> None:
    """Refuse a symlink on the way to ``path`` that another user owns, or that sits in a folder
    another user may change: either could point it elsewhere between this check and the use."""
    prefix = Path(os.path.abspath(path))
    for here in (*reversed(prefix.parents), prefix):
        try:
            lst = os.lstat(here)
        except OSError:
            return  # not there yet: made by this process, below what was checked
        if not stat.S_ISLNK(lst.st_mode):
            continue
        pst = os.stat(here.parent)
        loose = pst.st_uid != 0 or (pst.st_mode & 0o022 and not pst.st_mode & stat.S_ISVTX)
        if lst.st_uid != 0 or loose:
            raise TrustError(
                f"{_describe(str(here), lst)}: a symlink on the way to {what} must be owned by root, "
                "in a folder only root can change"
            )


def trusted_dir(path: Path, *, what: str) -> Path:
    """Return ``path``, made (0755) if missing, after :func:`check_tree`.

    Example: ``trusted_dir(Path("/var/cache/venvship"), what="the blob cache")``
    """
    try:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise InstallError(f"{path}: {what} exists and is not a directory") from exc
    check_tree(path, what=what)
    return path


def check_existing(folders: Iterable[tuple[Path, str]]) -> None:
    """Run :func:`check_tree` on each ``(folder, what)`` that exists; a missing one is made later,
    by this process, under a folder already checked.

    Example: ``check_existing([(Path("/var/cache/venvship/unpacked"), "the layer store")])``
    """
    for folder, what in folders:
        if os.path.lexists(folder):
            check_tree(folder, what=what)


def system_program(name: str) -> str | None:
    """Return the path of program ``name`` on :data:`SYSTEM_PATH` (never the caller's PATH), or None."""
    return next(
        (os.path.join(d, name) for d in SYSTEM_PATH if os.access(os.path.join(d, name), os.X_OK)),
        None,
    )


def host_python(executable: str, *, managed: Iterable[Path] = ()) -> str:
    """Return the absolute interpreter to run for ``executable`` (the artifact's or ``--python``'s).

    A bare name is looked up on :data:`SYSTEM_PATH` only; a path must be absolute and lie outside
    every venvship-managed folder in ``managed`` (the cache, destinations and their generations),
    where an earlier artifact could have put a program. As root, the path as given (its folders and
    symlinks) and the interpreter's real path must pass :func:`check_tree` too; the real path is
    what is returned, and run.
    """
    if "\0" in executable or not executable:
        raise TrustError(f"python {executable!r}: not an interpreter name or path")
    if "/" not in executable:
        found = system_program(executable)
        if found is None:
            raise InstallError(
                f"python {executable!r} not found on the system PATH ({':'.join(SYSTEM_PATH)})"
            )
        path = found
    elif not executable.startswith("/"):
        raise TrustError(f"python {executable!r}: a path to the interpreter must be absolute")
    else:
        path = executable
    real = os.path.realpath(path)
    for name in {os.path.basename(path), os.path.basename(real)}:
        if not _PYTHON_NAME.fullmatch(name):
            raise TrustError(f"python {executable!r}: {name!r} is not the name of a Python interpreter")
    for folder in managed:
        top = os.path.realpath(folder)
        for candidate in (os.path.abspath(path), real):
            if candidate == top or candidate.startswith(top.rstrip("/") + "/"):
                raise TrustError(
                    f"python {executable!r} lies in {folder}, which venvship manages: refusing it"
                )
    if not os.path.isfile(real) or not os.access(real, os.X_OK):
        raise InstallError(f"python {executable!r} not found on this host")
    # Python reads ``<path>._pth`` and ``pyvenv.cfg`` beside the path it was started as: every folder
    # and symlink on the path as given is checked, and the interpreter is run by its real path. It
    # also reads pyvenv.cfg in the folder above its own and looks for its stdlib in every folder
    # above: a sticky one (/tmp) lets any user add those, so none may be writable by others.
    check_tree(Path(os.path.abspath(path)), what="the interpreter", sticky=False)
    return real
