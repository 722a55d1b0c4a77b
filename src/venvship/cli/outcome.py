"""How both commands end: the library's log on stderr, a user's mistake as one line and an exit code.

Stdlib only: ``venv-pull`` (and its zipapp) uses it too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

from .._log import cli_logging
from ..errors import VenvshipError


def os_error_text(exc: OSError) -> str:
    """Return ``PATH: reason`` for an OSError (``[Errno 13] Permission denied: 'x'`` reads worse)."""
    if exc.filename is None or not exc.strerror:
        return str(exc)
    return f"{exc.filename}: {exc.strerror}"


def run_command(prog: str, level: int, call: Callable[[], int]) -> int:
    """Return ``call()``'s exit code: 1 after one error line, 2 for a usage message, 130 on ^C,
    141 (quietly) when stdout's reader went away."""
    try:
        with cli_logging(level):
            return call()
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a usage error found after parsing
            print(exc.code, file=sys.stderr)
            return 2
        raise
    except VenvshipError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`venvship inspect REF | head`): stop quietly, as `git log | head`
        # does; what was left to print goes nowhere, so the exit's flush fails no more.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by it
    except OSError as exc:
        # Permissions and full disks are the user's to fix: one line, no traceback.
        print(f"{prog}: error: {os_error_text(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
