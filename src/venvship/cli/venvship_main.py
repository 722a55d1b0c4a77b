"""``venvship``: the build side. The only place that parses argv, prints and exits for it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__
from ..errors import VenvshipError
from .importrole_cmd import add_parser as add_import_role

PROG = "venvship"


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("venvship")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    log.propagate = False


def _output_layout(text: str) -> Path:
    from ..oci.reference import LayoutRef, parse_ref

    ref = parse_ref(text)
    if not isinstance(ref, LayoutRef) or ref.name:
        raise VenvshipError(f"{text}: --output takes oci:DIR (registries: build to a layout, then publish)")
    return ref.path


def cmd_build(args: argparse.Namespace) -> int:
    from ..build.stage import build_recipe
    from ..oci.layout import Layout
    from ..recipe import find_recipes, load_recipe

    recipes = [load_recipe(p) for p in find_recipes([Path(r) for r in args.recipes or ["recipes"]])]
    if not recipes:
        raise VenvshipError(f"no recipes found in {' '.join(args.recipes or ['recipes'])}")
    layout = Layout.create(_output_layout(args.output))
    results = []
    for recipe in recipes:
        result = build_recipe(
            recipe,
            output=layout,
            cache=Path(args.cache_dir) if args.cache_dir else None,
            reuse_from=args.reuse_from,
            rebuild_wheels=args.rebuild_wheels,
            refresh=args.refresh,
        )
        results.append(result)
        if not args.json:
            if result.status == "unchanged":
                print(f"{result.name}: unchanged ({result.ref} {result.digest[:19]})")
            else:
                print(
                    f"{result.name}: built {result.ref} {result.digest[:19]}: {result.packages} packages; "
                    f"wheels {len(result.built)} built, {len(result.downloaded)} downloaded, "
                    f"{len(result.cached)} cached, {len(result.reused)} reused; "
                    f"{result.blobs_written} blobs written"
                )
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2, default=list))
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..inspect import inspect_ref

    view = inspect_ref(args.ref, insecure=args.insecure)
    if args.json:
        print(json.dumps(view.to_json(), indent=2))
        return 0
    print(f"{view.ref}  {view.digest}  ({len(view.platforms)} platform(s))")
    for p in view.platforms:
        total = sum(layer.size for layer in p.manifest.layers)
        print(f"\n{p.key}  {p.digest}  {p.config.name} {p.config.version}  {_human(total)}")
        print(f"  install path: {p.config.install_path}  tool: {p.config.install_tool}")
        for w in p.config.lock:
            print(f"  {w.name}=={w.version}  sha256:{w.sha256[:12]}  {_human(w.size)}  {w.filename}")
        for w in p.config.tools:
            print(f"  (tool) {w.name}=={w.version}  sha256:{w.sha256[:12]}  {_human(w.size)}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ..inspect import diff_views, inspect_ref

    result = diff_views(
        inspect_ref(args.old, insecure=args.insecure), inspect_ref(args.new, insecure=args.insecure)
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    for key in result.only_old:
        print(f"platform removed: {key}")
    for key in result.only_new:
        print(f"platform added: {key}")
    for key, changes in result.changes.items():
        if not changes:
            print(f"{key}: no package changes")
            continue
        print(f"{key}:")
        for c in changes:
            if c.kind == "added":
                print(f"  + {c.name} {c.new.version if c.new else ''}")
            elif c.kind == "removed":
                print(f"  - {c.name} {c.old.version if c.old else ''}")
            else:
                old = c.old.version if c.old else ""
                new = c.new.version if c.new else ""
                note = "" if old != new else " (rebuilt: different wheel)"
                print(f"  ~ {c.name} {old} -> {new}{note}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Build Python venvs as verified OCI artifacts.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log progress (-vv: commands too)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="build recipes into an OCI layout")
    b.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipe files or folders (default: recipes/)")
    b.add_argument("--output", default="oci:build/oci", metavar="REF", help="oci:DIR (default oci:build/oci)")
    b.add_argument(
        "--reuse-from", metavar="REF", help="reuse wheels of a previous artifact (oci:DIR:NAME:TAG)"
    )
    b.add_argument(
        "--rebuild-wheels", action="store_true", help="ignore every wheel cache (venv_wheels_rebuild)"
    )
    b.add_argument("--refresh", action="store_true", help="resolve again even if no input changed")
    b.add_argument(
        "--cache-dir", metavar="DIR", help="build cache (default $VENVSHIP_CACHE or ~/.cache/venvship)"
    )
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.set_defaults(func=cmd_build)

    i = sub.add_parser("inspect", help="show an artifact's platforms and packages")
    i.add_argument("ref", metavar="REF")
    i.add_argument("--json", action="store_true")
    i.add_argument("--insecure", action="store_true", help="allow plain HTTP to a registry")
    i.set_defaults(func=cmd_inspect)

    d = sub.add_parser("diff", help="packages added, removed and changed between two artifacts")
    d.add_argument("old", metavar="REF")
    d.add_argument("new", metavar="REF")
    d.add_argument("--json", action="store_true")
    d.add_argument("--insecure", action="store_true", help="allow plain HTTP to a registry")
    d.set_defaults(func=cmd_diff)
    add_import_role(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``venvship`` command line; return the exit code (0 ok, 1 error, 2 usage)."""
    args = parser().parse_args(argv)
    _setup_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except VenvshipError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
