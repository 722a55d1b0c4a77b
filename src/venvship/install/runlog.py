"""The persistent log: one JSON line per ``venv-pull`` install, rollback and prune (stdlib only).

As root, the log's folder is trusted as the facts folder is (root-owned, not writable by group or
others, all the way up) and the file itself must be root's, a regular file, not writable by group
or others: another user must neither forge lines nor make root append to a file of their
choosing. A log that cannot be written costs one warning, never the run it records.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .._log import logger
from ..errors import VenvshipError
from ..host import trust

ROOT_LOG = Path("/var/log/venvship/venv-pull.log")
LOG_ENV = "VENVSHIP_LOG"
MAX_ERROR = 4000  # characters of the error kept: one line, not a whole pip output


def default_log_file() -> Path | None:
    """Return where the log goes: ``$VENVSHIP_LOG`` if set (empty: nowhere), else root's
    ``/var/log/venvship/venv-pull.log``, else the user's ``$XDG_STATE_HOME/venvship/venv-pull.log``
    (``~/.local/state`` without it), or None if the user has no home.

    Example: ``default_log_file()``
    """
    if LOG_ENV in os.environ:
        value = os.environ[LOG_ENV]
        return Path(value).absolute() if value else None
    if trust.enforcing():
        return ROOT_LOG
    state = os.environ.get("XDG_STATE_HOME")
    if not state:
        try:
            state = str(Path.home() / ".local" / "state")
        except RuntimeError:  # no HOME and no passwd entry: nowhere of the user's own
            return None
    return Path(state).absolute() / "venvship" / "venv-pull.log"


@dataclass(frozen=True)
class Entry:
    """One run of a command that changes a host: what it acted on and how it ended.

    ``outcome``: ``changed``, ``unchanged``, ``would change`` (``--check``) or ``error``.
    """

    command: str
    started: float  # seconds since the epoch
    duration: float  # seconds
    outcome: str
    dest: str = ""
    ref: str = ""
    digest: str = ""
    previous_digest: str = ""
    cache: str = ""
    error: str = ""
    details: Mapping[str, object] | None = None  # what else the command reports (prune: counts)

    def to_json(self) -> dict[str, object]:
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.started))
        data: dict[str, object] = {
            "time": f"{started}.{int(self.started % 1 * 1000):03d}Z",
            "command": self.command,
            "dest": self.dest,
            "ref": self.ref,
            "digest": self.digest,
            "previous_digest": self.previous_digest,
            "cache": self.cache,
            "duration": round(self.duration, 3),
            "outcome": self.outcome,
            "error": self.error[:MAX_ERROR],
            "pid": os.getpid(),
            "uid": os.geteuid(),
        }
        data.update(self.details or {})
        return data


def append(path: Path, entry: Entry) -> bool:
    """Append ``entry`` as one JSON line to the log at ``path``; return False (after one warning)
    if it could not be written.

    Example: ``append(ROOT_LOG, Entry(command="prune", started=time.time(), duration=0.2, outcome="changed"))``
    """
    line = (json.dumps(entry.to_json(), sort_keys=True, ensure_ascii=True) + "\n").encode()
    try:
        _append(path, line)
    except (OSError, VenvshipError) as exc:
        reason = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        logger.warning("warning: the run was not logged to %s: %s", path, reason)
        return False
    return True


def _append(path: Path, line: bytes) -> None:
    if trust.enforcing():
        trust.trusted_dir(path.parent, what="the log folder")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: never through a planted symlink; O_APPEND: one write per line, so that
    # concurrent runs' lines do not interleave.
    flags = (
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    )
    fd = os.open(path, flags, 0o640)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise VenvshipError(f"{path}: the log is not a regular file")
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise VenvshipError(
                f"{path}: the log must be owned by this user and not writable by group or others"
            )
        os.write(fd, line)
    finally:
        os.close(fd)
