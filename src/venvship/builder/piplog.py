"""What a failed pip run was about, told from its output and its ``--log`` file.

pip runs quiet, so its console output holds only its last ERROR lines: an index it could not reach
reads "from versions: none", and a conflict loses the lines naming who asked for what. Its log
file, written at debug level whatever the console shows, keeps both.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..redact import redact

_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT[\d:,.]+ ?")
# pip skips an index or find-links page it cannot fetch and says so only at debug level. A 404 is
# an index without that project, which is normal; anything else (refused, timed out, 5xx, TLS,
# 401/403) means pip did not see what the index holds.
_UNREACHABLE = re.compile(r"^Could not fetch URL (\S+): (.*?)(?: - skipping)?$")
_FILE_LINE = re.compile(r"-([rc]) (\S+) \(line (\d+)\)")
_CONFLICT_START = "The conflict is caused by:"
_KEPT = 12
_LOG_TAIL = 4 << 20  # bytes of pip's log read back


@dataclass(frozen=True)
class PipFailure:
    """Why pip failed: the lines that say it, and the index pages it could not fetch."""

    detail: str
    unreachable: tuple[str, ...]


def log_args(log: Path) -> tuple[str, str]:
    """Return pip's ``--log`` option for ``log`` (emptied first: pip appends to it)."""
    log.unlink(missing_ok=True)
    return ("--log", os.fspath(log))


def _log_lines(log: Path) -> list[str]:
    # The log sits where the build code may write: never followed through a symlink (to a file of
    # root's that would then be shown), and only its last part is read.
    try:
        fd = os.open(log, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return []
        fh.seek(max(0, st.st_size - _LOG_TAIL))
        text = fh.read(_LOG_TAIL).decode("utf-8", errors="replace")
    return [_STAMP.sub("", line.rstrip()) for line in text.splitlines()]


def _unreachable(lines: Sequence[str]) -> tuple[str, ...]:
    found = []
    for line in lines:
        match = _UNREACHABLE.match(line.strip())
        if match and not match.group(2).startswith("404 "):
            found.append(redact(f"{match.group(1)}: {match.group(2)}"))
    return tuple(dict.fromkeys(found))


def _conflict(lines: Sequence[str]) -> list[str]:
    """Return pip's "The conflict is caused by:" block (who asked for what), if it wrote one."""
    for n, line in enumerate(lines):
        if line.strip() == _CONFLICT_START:
            block = [_CONFLICT_START]
            for follow in lines[n + 1 :]:
                if not follow.strip():
                    break
                block.append("  " + follow.strip())
            return block
    return []


def _error_lines(output: str) -> list[str]:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    picked = [
        ln
        for ln in lines
        if ln.startswith("ERROR")
        or ln.startswith("The user requested")
        or "is incompatible" in ln
        or ln.startswith("Cannot install")
    ]
    return picked[:_KEPT] or lines[-8:]


def explain(output: str, log: Path, *, files: Sequence[str | os.PathLike[str]] = ()) -> PipFailure:
    """Return what pip's failed run says went wrong, from its ``output`` and its ``--log`` file.

    ``files``: the requirement and constraint files this run wrote for pip, which pip names as
    ``-r FILE (line N)``; they are temporary, so the line itself is shown instead.

    Example: ``explain(exc.output, workdir / "pip.log", files=[workdir / "requirements.txt"])``
    """
    texts: dict[str, list[str]] = {}
    for file in files:
        try:
            texts[os.fspath(file)] = Path(file).read_text().splitlines()
        except OSError:
            continue
    lines = _log_lines(log)
    picked = _error_lines(output)
    conflict = _conflict(lines)
    if conflict and not any(ln.strip() == _CONFLICT_START for ln in picked):
        picked += conflict

    def named(match: re.Match[str]) -> str:
        known = texts.get(match.group(2))
        number = int(match.group(3))
        if known is None or not 0 < number <= len(known):
            return match.group(0)
        return known[number - 1]

    detail = "\n".join(_FILE_LINE.sub(named, ln) for ln in picked)
    return PipFailure(detail=detail, unreachable=_unreachable(lines))
