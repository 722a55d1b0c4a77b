"""How both commands end: the library's log on stderr, a user's mistake as one line and an exit code.

Also what both command lines share: the options every command takes (``-v``, ``-q``, ``--json``,
before or after the command), a parser whose usage errors can be reported as JSON, and the
``schema`` every JSON document carries.

Stdlib only: ``venv-pull`` (and its zipapp) uses it too.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
from typing import Any, Callable, Mapping, NoReturn, Sequence

from .._fsutil import disk_full_error
from .._log import cli_logging
from .._text import printable
from ..errors import VenvshipError

# The version of every JSON document both commands print (docs/reference/cli.md#json-output). It
# changes only when a key is removed or changes meaning; new keys may come without it.
SCHEMA = 1
EXIT_SIGPIPE = 128 + 13  # what a shell reports for a tool killed by SIGPIPE


class UsageError(Exception):
    """A command line argparse refused: its message (``PROG CMD: error: …``) and the usage."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class CommandParser(argparse.ArgumentParser):
    """An argparse parser that raises :class:`UsageError` instead of exiting, so that ``--json``
    can report a usage error too, and that keeps the line breaks of descriptions and examples."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}", self.format_usage())


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    example: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add command ``name`` to ``sub`` with its help, a description and one example.

    Example: ``add_command(sub, "prune", help="remove old generations", example="venv-pull prune --keep 1")``
    """
    return sub.add_parser(name, help=help, description=description or help, epilog=f"example:\n  {example}")


def add_output_options(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    """Add ``-v``, ``-q`` and ``--json`` to ``p``: with their defaults on the top parser, and on a
    command's parser without any, so that the same option given before the command stays set."""
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument(
        "-v", "--verbose", action="count", help="also show the commands run and their output", **default
    )
    p.add_argument("-q", "--quiet", action="store_true", help="show only errors on stderr", **default)
    p.add_argument(
        "--json", action="store_true", help="print the result as one JSON object (errors too)", **default
    )
    if top:
        p.set_defaults(verbose=0, quiet=False, json=False)


def json_text(data: Mapping[str, object], *, indent: int | None = None) -> str:
    """Return ``data`` as a JSON document carrying :data:`SCHEMA`.

    Example: ``print(json_text({"changed": True}))``
    """
    return json.dumps({"schema": SCHEMA, **data}, sort_keys=True, indent=indent)


def shown(text: str) -> str:
    """Return ``text`` fit for one line of output: control characters escaped. What an artifact or
    a registry says is hostile: a line break or a terminal escape would forge lines of its own.

    Example: ``shown("demo\\nsigned") == "demo\\\\nsigned"``
    """
    return printable(text)


def os_error_text(exc: OSError) -> str:
    """Return ``PATH: reason`` for an OSError (``[Errno 13] Permission denied: 'x'`` reads worse)."""
    if exc.errno == errno.ENOSPC:
        return str(disk_full_error(exc))
    if exc.filename is None or not exc.strerror:
        return str(exc)
    return f"{exc.filename}: {exc.strerror}"


def run_cli(
    prog: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    call: Callable[[argparse.Namespace], int],
    *,
    not_root: str = "",
) -> int:
    """Parse ``argv`` and return ``call(args)``'s exit code: 1 after one error line per fault, 2 for
    a usage error, 130 on ^C, 141 when stdout's reader went away. With ``--json``, an error is also
    printed on stdout as ``{"error": …, "schema": 1}``. ``not_root`` is added to a "Permission
    denied" met by a user other than root (where its folders are by default).

    Example: ``sys.exit(run_cli("venv-pull", parser(), None, dispatch))``
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # As root on every host: what venvship makes is never group- or world-writable, whatever
    # umask the caller (cron, an Ansible task) left.
    os.umask(0o022)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(exc.usage)
        return _fail(prog, [str(exc)], as_json="--json" in argv, code=2, prefixed=True)
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO
    try:
        with cli_logging(level):
            code = call(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a usage error found after parsing
            return _fail(prog, [exc.code], as_json=args.json, code=2, prefixed=True)
        raise
    except VenvshipError as exc:
        return _fail(prog, list(getattr(exc, "problems", ())) or [str(exc)], as_json=args.json)
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            # The reader went away (`venvship inspect … | head`): stop quietly, as `cat` does.
            _stdout_to_devnull()
            return EXIT_SIGPIPE
        # Permissions and full disks are the user's to fix: one line, no traceback.
        text = os_error_text(exc)
        if not_root and exc.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
            text += f" ({not_root})"
        return _fail(prog, [text], as_json=args.json)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _fail(prog: str, lines: list[str], *, as_json: bool, code: int = 1, prefixed: bool = False) -> int:
    # An error may quote what a store or server wrote: no terminal control reaches the screen (a
    # message's own line breaks stay: pip's output under a build error).
    lines = [printable(line, keep="\n\t") for line in lines]
    for line in lines:
        print(line if prefixed else f"{prog}: error: {line}", file=sys.stderr)
    if as_json:
        print(json_text({"error": "\n".join(lines)}))
    return code


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail on the closed pipe."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing left to flush
        pass
