"""``venvship``: the build side. The only place that parses argv, prints and exits for it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .. import __version__
from .._process import hide_process
from .cache_cmd import add_parser as add_cache
from .catalog_cmd import add_parsers as add_catalog_commands
from .importrole_cmd import add_parser as add_import_role
from .install_args import add_install_options
from .outcome import CommandParser, add_command, add_output_options, json_text, run_cli
from .publish_cmd import add_parsers as add_publish_commands
from .publish_cmd import published_line
from .recipes_cmd import add_parsers as add_recipe_commands
from .venvship_args import (
    add_immutable_option,
    add_registry_options,
    add_sign_option,
    registry_access,
    sign_key,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..builder.recipebuild import BuildOptions
    from ..oci.source import Access

    _Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "venvship"


def _build_options(args: argparse.Namespace, access: Access | None = None, **extra: object) -> BuildOptions:
    from ..builder.recipebuild import BuildOptions
    from ..oci.reference import parse_ref

    return BuildOptions(
        cache=Path(args.cache_dir) if args.cache_dir else None,
        reuse_from=parse_ref(args.reuse_from) if getattr(args, "reuse_from", None) else None,
        pythons=tuple(getattr(args, "python_extra", None) or ()),
        distro_packages=not getattr(args, "no_distro_packages", False),
        reuse_access=access,
        reuse_policy=Path(args.reuse_policy) if getattr(args, "reuse_policy", None) else None,
        rebuild_wheels=args.rebuild_wheels,
        refresh=args.refresh,
        immutable_tags=getattr(args, "immutable_tags", False),
        **extra,  # type: ignore[arg-type]
    )


def cmd_build(args: argparse.Namespace) -> int:
    from ..builder.batch import build_recipes
    from ..oci.reference import parse_ref

    output = parse_ref(args.output)
    access = registry_access(args, output)
    run = build_recipes(
        [Path(r) for r in args.recipes or ["recipes"]],
        output=output,
        options=_build_options(args, access),
        access=access,
        sign_key=sign_key(args),
    )
    if args.json:
        print(json_text(run.to_json(), indent=2))
        return 0
    for result in run.results:
        print(result.summary())
    if run.published is not None:
        print(published_line(args.output, run.published))
    for tag, digest in run.indexes:
        print(f"{tag}: index {digest}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from ..local.buildinstall import install_recipe
    from ..recipe.recipefile import load_recipe
    from .install_args import install_options, install_report

    recipe = load_recipe(Path(args.recipe))
    done = install_recipe(recipe, install_options(args), build=_build_options(args))
    b = done.build
    if b.status == "built" and not args.json:
        print(b.summary())
    note = f"; {b.ref} would be built first" if b.status == "outdated" else ""
    print(install_report(done.install, as_json=args.json, note=note))
    return 0


def parser() -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = CommandParser(
        prog=PROG,
        description="Build Python venvs as verified OCI artifacts.",
        epilog="example:\n  venvship build recipes/demo.toml --output oci:build/oci",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_output_options(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _build_parser(sub)
    _install_parser(sub)
    add_publish_commands(sub)
    add_catalog_commands(sub)
    add_import_role(sub)
    add_recipe_commands(sub)
    add_cache(sub)
    return p


def _rebuild_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rebuild-wheels", action="store_true", help="ignore every wheel cache (venv_wheels_rebuild)"
    )
    p.add_argument("--refresh", action="store_true", help="resolve again even if no input changed")
    p.add_argument(
        "--cache-dir", metavar="DIR", help="build cache (default $VENVSHIP_CACHE or ~/.cache/venvship)"
    )


def _build_parser(sub: _Sub) -> None:
    b = add_command(
        sub,
        "build",
        help="build recipes into an OCI layout",
        example="venvship build recipes --output oci:build/oci",
    )
    b.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipe files or folders (default: recipes/)")
    b.add_argument(
        "--output",
        default="oci:build/oci",
        metavar="REF",
        help="oci:DIR (default oci:build/oci) or HOST[:PORT]/NAMESPACE",
    )
    b.add_argument(
        "--reuse-from",
        metavar="REF",
        help="reuse wheels of a previous artifact (oci:DIR:NAME:TAG): index wheels whose sha256 is the "
        "index's; wheels built from sources only if its signature satisfies --reuse-policy",
    )
    b.add_argument(
        "--reuse-policy",
        metavar="FILE",
        help="trust policy (venv-pull's format) the --reuse-from artifact's signature must satisfy "
        "for its wheels built from sdists or VCS sources to be reused",
    )
    b.add_argument(
        "--python",
        dest="python_extra",
        action="append",
        metavar="PYTHON",
        help="also build for this interpreter (repeatable): one manifest per interpreter, all in one index",
    )
    b.add_argument(
        "--no-distro-packages",
        action="store_true",
        help="leave the build distro packages to someone else (they must be installed already)",
    )
    _rebuild_options(b)
    add_immutable_option(b)
    add_registry_options(b)
    add_sign_option(b, "sign each built manifest and index with this key")
    add_output_options(b)
    b.set_defaults(func=cmd_build)


def _install_parser(sub: _Sub) -> None:
    inst = add_command(
        sub,
        "install",
        help="build RECIPE on this host into the blob cache and install it (no build host)",
        description="Build RECIPE for this host into the blob cache (an OCI layout) and install it "
        "from there exactly as `venv-pull install oci:CACHE:NAME:TAG` does. Unchanged inputs and "
        "an intact venv: nothing is built or written.",
        example="venvship install recipes/demo.toml --dest /opt/venvs/demo-1.0 --json",
    )
    inst.add_argument("recipe", metavar="RECIPE", help="recipe file")
    add_install_options(
        inst,
        check_help="report what would change; build and write nothing (if the recipe's inputs "
        "changed since the last build: changed, with the digest left empty until built)",
    )
    _rebuild_options(inst)
    add_output_options(inst)
    inst.set_defaults(func=cmd_install)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``venvship`` command line; return the exit code (0 ok, 1 error, 2 usage)."""

    def call(args: argparse.Namespace) -> int:
        # Before any secret is read and any child runs: see _process.hide_process.
        hide_process()
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)

    return run_cli(PROG, parser(), argv, call)


if __name__ == "__main__":
    sys.exit(main())
