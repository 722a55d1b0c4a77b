"""The install options ``venv-pull install`` and ``venvship install`` share: parser, options, report.

Stdlib only: it travels in the ``venv-pull`` zipapp.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..install.installer import InstallOptions, InstallResult

DEFAULT_CACHE = Path("/var/cache/venvship")
DEFAULT_FACTS = Path("/etc/ansible/facts.d")
CHECK_HELP = "report what would change; write nothing"


def absolute_path(text: str) -> Path:
    """An argparse type: a path made absolute now, so links made from it and generations found
    by it do not depend on the directory a later command runs in."""
    return Path(text).absolute()


def generations_arg(text: str) -> int:
    """Parse ``--keep N``: a whole number of generations, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_common_options(p: argparse.ArgumentParser, *, facts: bool = False, lock: bool = True) -> None:
    """Add the options every venv-pull command shares (cache, JSON; facts and lock where they apply)."""
    p.add_argument(
        "--cache", type=absolute_path, default=DEFAULT_CACHE, help="blob cache (default: %(default)s)"
    )
    if facts:
        p.add_argument(
            "--facts-dir", type=absolute_path, default=DEFAULT_FACTS, help="(default: %(default)s)"
        )
    if lock:
        p.add_argument(
            "--lock-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="give up if another run holds the lock this long (default: wait)",
        )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_install_options(p: argparse.ArgumentParser, *, check_help: str = CHECK_HELP) -> None:
    """Add the options of an install (destination, cache, facts, generations, checks) to ``p``."""
    p.add_argument("--dest", type=absolute_path, help="venv path (default: the recipe's install path)")
    add_common_options(p, facts=True, lock=True)
    p.add_argument(
        "--keep", type=generations_arg, default=2, metavar="N", help="generations to keep (default: 2)"
    )
    p.add_argument("--rebuild", action="store_true", help="make a new generation even if unchanged")
    p.add_argument("--no-compile", action="store_true", help="do not compile bytecode")
    p.add_argument("--check", action="store_true", help=check_help)
    p.add_argument("--check-command", help="health check to run instead of importing the packages")
    p.add_argument(
        "--no-distro-packages",
        action="store_true",
        help="skip the distro packages (managed elsewhere)",
    )


def install_options(args: argparse.Namespace, *, reference: str, **extra: Any) -> InstallOptions:
    """Return the :class:`InstallOptions` of parsed ``args`` for ``reference`` (``extra``: more fields)."""
    return InstallOptions(
        reference=reference,
        dest=args.dest,
        cache=args.cache,
        facts_dir=args.facts_dir,
        keep=args.keep,
        rebuild=args.rebuild,
        compile=not args.no_compile,
        check=args.check,
        lock_timeout=args.lock_timeout,
        check_command=args.check_command,
        distro_packages=not args.no_distro_packages,
        **extra,
    )


def install_report(result: InstallResult, *, as_json: bool, note: str = "") -> str:
    """Return what to print for ``result``: one JSON object, or one line (with ``note`` appended)."""
    data = result.to_json()
    if result.check:
        data["check"] = True
    if as_json:
        return json.dumps(data, sort_keys=True)
    verb = ("would change" if result.check else "changed") if result.changed else "unchanged"
    what = f"{result.digest}, {result.packages} packages" if result.digest else "digest known once built"
    return f"{result.dest}: {verb} ({what}){note}"
