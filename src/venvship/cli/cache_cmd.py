"""``venvship cache [prune]``: what the build cache holds, and removing what no recent build uses."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._units import human_size
from .outcome import add_command, add_output_options, json_text

DEFAULT_DAYS = 30


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 (--all removes everything)")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``cache`` subcommand on ``sub``."""
    p = add_command(
        sub,
        "cache",
        help="show the build cache, part by part; `cache prune` removes what no recent build used",
        description="Show what the build cache holds (builder venvs, wheels, layers, the staging "
        "layout of registry builds, resolutions, build state, leftovers of killed builds) with "
        "sizes; or, with `prune`, remove what no build used for --days days, leftovers of killed "
        "builds and staging blobs no tag reaches. Pruning waits for no build: if one is running, "
        "it exits 1 and removes nothing.",
        example="venvship cache prune --days 14",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("show", "prune"),
        default="show",
        help="show (default) or prune",
    )
    p.add_argument(
        "--cache-dir", metavar="DIR", help="build cache (default $VENVSHIP_CACHE or ~/.cache/venvship)"
    )
    p.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"prune: keep what a build used in the last N days (default {DEFAULT_DAYS})",
    )
    p.add_argument("--all", action="store_true", help="prune: remove everything but the locks")
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Show or prune the build cache."""
    from ..builder import cachecare
    from ..builder.recipebuild import default_cache

    cache = Path(args.cache_dir) if args.cache_dir else default_cache()
    if args.action == "prune":
        pruned = cachecare.prune(cache, days=0 if args.all else args.days)
        text = f"{cache}: removed {len(pruned.removed)} entries, {human_size(pruned.freed)} freed"
        print(json_text(pruned.to_json(), indent=2) if args.json else text)
        return 0
    usage = cachecare.usage(cache)
    if args.json:
        print(json_text(usage.to_json(), indent=2))
        return 0
    print(f"{cache}: {human_size(usage.size)}")
    for part in usage.parts:
        print(f"  {part.name + '/':<13}{human_size(part.size):>10}  {part.entries:>5}  {part.what}")
    return 0
