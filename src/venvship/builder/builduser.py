"""The build user that dependencies' build code runs as (#20), and the rules that keep it one build's.

Every process of one user reaches every other's files and, by ptrace, its memory: another build's
code, or a service running as ``nobody``, could change what a build of the same user makes while
it runs (rewrite a wheel in its outbox before root takes it, give its pip a configuration). So
builds of one build user take turns, host-wide, and a build stops when a process of its build user
runs that it did not start: before the build begins, and before and after each of its children.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from pathlib import Path
from typing import Iterator

from .._fsutil import file_lock
from ..errors import BuildError

BUILD_USER_VARIABLE = "VENVSHIP_BUILD_USER"


def build_user() -> tuple[int, int] | None:
    """Return the (uid, gid) dependencies' build code runs as: as root, ``$VENVSHIP_BUILD_USER``
    (a name or a uid) or ``nobody``; None for any other user, whose build code runs as itself.

    Example: ``build_user()`` → ``(65534, 65534)`` as root
    """
    if os.geteuid() != 0:
        return None
    name = os.environ.get(BUILD_USER_VARIABLE, "").strip() or "nobody"
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        ids = (entry.pw_uid, entry.pw_gid)
    except KeyError:
        if not name.isdigit():
            raise BuildError(f"{BUILD_USER_VARIABLE}={name!r}: no such user") from None
        ids = (int(name), int(name))  # a uid without a passwd entry (containers): its own group
    if 0 in ids:
        raise BuildError(
            f"{BUILD_USER_VARIABLE}={name!r}: dependencies' build code must not run with root's uid or group"
        )
    return ids


# Host-wide: builds of one build user take turns, whatever their caches (see alone).
_USER_LOCKS = Path("/run/venvship/build-users")


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


def _started_here(pid: int) -> bool:
    """Whether ``pid`` descends from this process through a pid namespace of its own: the
    sandbox's children and whatever they started, and nothing else (the kernel keeps a process
    from leaving its pid namespace)."""
    me, mine = os.getpid(), os.readlink("/proc/self/ns/pid")
    elsewhere = False
    for _ in range(4096):  # a chain of parents ends at pid 1; a bound all the same
        if pid == me:
            return elsewhere
        if pid <= 1:
            return False
        try:
            elsewhere = elsewhere or os.readlink(f"/proc/{pid}/ns/pid") != mine
            pid = int(_status(pid)["PPid"])
        except (OSError, KeyError, ValueError):  # ended meanwhile
            return False
    return False


def _processes_of(uid: int) -> list[int]:
    """Return the pids of live processes (zombies aside) any of whose user ids is ``uid`` that
    this build did not start."""
    found = []
    with os.scandir("/proc") as entries:
        pids = [int(e.name) for e in entries if e.name.isdigit()]
    for pid in pids:
        try:
            fields = _status(pid)
        except OSError:  # ended meanwhile
            continue
        if fields.get("State", "").split()[:1] == ["Z"] or str(uid) not in fields.get("Uid", "").split():
            continue
        if not _started_here(pid):
            found.append(pid)
    return found


def alone(uid: int) -> None:
    """Raise BuildError when a process of ``uid`` runs that this build did not start.

    Every process of the build user can reach every other one (ptrace, ``/proc/PID/cwd``) and
    every file it owns: another build's code, or a service running as ``nobody``, could rewrite
    this build's outbox, HOME or pip configuration while it runs.
    """
    others = _processes_of(uid)
    if others:
        pids = ", ".join(map(str, others[:5])) + (", …" if len(others) > 5 else "")
        raise BuildError(
            f"{BUILD_USER_VARIABLE}: uid {uid} also runs processes this build did not start (pid {pids}), "
            "which could change what the build makes; name a user that only venvship builds run as"
        )


@contextlib.contextmanager
def taking_turns(uid: int) -> Iterator[None]:
    """Hold the host-wide lock of build user ``uid`` (in a folder only root may write)."""
    _USER_LOCKS.mkdir(mode=0o755, parents=True, exist_ok=True)
    for folder in (_USER_LOCKS.parent, _USER_LOCKS):
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise BuildError(f"{folder}: not a folder of root's that only root may write")
    with file_lock(_USER_LOCKS / f"{uid}.lock"):
        yield
