"""The build cache is believed only when no other user can change it.

It holds what a build trusts without checking again: stored resolutions (which file each
distribution comes from and its sha256), wheels built from sdists, the builder venvs whose pip
runs, the staging layout that gets signed. Another user who can write it, or rename it (a folder
squatted in /tmp), chooses what gets locked and signed. So the cache folder must belong to the
user who builds, and neither it nor any folder above it may be writable by another user (a sticky
folder such as /tmp is fine: others may add entries there, not rename this user's). A group
write bit counts only when the group is not the user's own (umask 002 on per-user groups).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import BuildError


def _others_write(st: os.stat_result) -> bool:
    """Whether a user other than the folder's owner may write it."""
    if st.st_mode & stat.S_IWOTH:
        return True
    return bool(st.st_mode & stat.S_IWGRP) and not _own_group(st.st_gid)


def _own_group(gid: int) -> bool:
    """Whether ``gid`` is this user's own group: its primary group, and no other user's at all."""
    try:
        import grp
        import pwd

        me = pwd.getpwuid(os.geteuid()).pw_name
        members = set(grp.getgrgid(gid).gr_mem) - {me}
        shared = any(u.pw_gid == gid and u.pw_name != me for u in pwd.getpwall())
    except (KeyError, ImportError):
        return False
    return gid == os.getegid() and not members and not shared


def _owner(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def _describe(path: str, st: os.stat_result) -> str:
    return f"{path} (owner {_owner(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o})"


def build_cache(path: Path) -> Path:
    """Return ``path``, made (0700) if missing, once only this user (or root) can change it.

    Raises BuildError naming the folder at fault and its owner and mode.

    Example: ``build_cache(Path.home() / ".cache" / "venvship")``
    """
    uid = os.geteuid()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise BuildError(f"{path}: the build cache exists and is not a directory") from exc
    except OSError as exc:
        raise BuildError(f"{path}: the build cache cannot be made ({exc.strerror or exc})") from exc
    # Each symlink on the way is checked as a folder entry: another user's link could be pointed
    # elsewhere after this check.
    here = Path(os.path.abspath(path))
    for entry in (*reversed(here.parents), here):
        lst = os.lstat(entry)
        if stat.S_ISLNK(lst.st_mode) and lst.st_uid not in (uid, 0):
            raise BuildError(
                f"{_describe(str(entry), lst)}: a symlink on the way to the build cache is another user's"
            )
    real = os.path.realpath(path)
    st = os.stat(real)
    if st.st_uid != uid or _others_write(st):
        raise BuildError(
            f"{_describe(real, st)}: the build cache must be owned by {_owner(uid)} and writable by no "
            "other user (another user could choose what gets built, locked and signed); "
            "use a folder of your own (--cache-dir, VENVSHIP_CACHE)"
        )
    renamable = others_may_rename(os.path.dirname(real))
    if renamable is not None:
        raise BuildError(
            f"{renamable}: a folder above the build cache {real} is writable by other "
            "users, who could put their own folder in its place"
        )
    return path


def others_may_rename(folder: str) -> str | None:
    """Return ``folder`` or the first folder above it (described: owner, mode) in which another user
    may rename or replace entries (writable by them and not sticky); None when there is none."""
    while True:
        st = os.stat(folder)
        if _others_write(st) and not st.st_mode & stat.S_ISVTX:
            return _describe(folder, st)
        if folder == "/":
            return None
        folder = os.path.dirname(folder)
