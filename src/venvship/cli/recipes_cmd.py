"""``venvship check`` and ``venvship refs``: recipes read, nothing built."""

from __future__ import annotations

import argparse
from pathlib import Path

from .outcome import add_command, add_output_options, json_text

_RECIPES_HELP = "recipe files or folders (default: recipes/)"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``check`` and ``refs`` subcommands on ``sub``."""
    c = add_command(
        sub,
        "check",
        help="check recipes without building: every fault of every recipe, one line each",
        description="Read every recipe as a build would (its defaults file and local constraint "
        "files too) and report every fault at once, each naming the file and key; build nothing. "
        "Exit 1 if any recipe has a fault.",
        example="venvship check recipes",
    )
    c.add_argument("recipes", nargs="*", metavar="RECIPE", help=_RECIPES_HELP)
    add_output_options(c)
    c.set_defaults(func=run_check)
    r = add_command(
        sub,
        "refs",
        help="print each recipe's NAME:VERSION, the index tag a build makes, one per line",
        description="Print each recipe's artifact name and index tag (NAME:VERSION, a PEP 440 local "
        "'+' written '_') one per line, in the order a build takes them: for CI jobs that index or "
        "install what the recipes name. Recipes are checked as by `venvship build`.",
        example='venvship refs recipes | while read -r ref; do venvship index "$NS/$ref"; done',
    )
    r.add_argument("recipes", nargs="*", metavar="RECIPE", help=_RECIPES_HELP)
    add_output_options(r)
    r.set_defaults(func=run_refs)


def _files(args: argparse.Namespace) -> list[Path]:
    from ..errors import VenvshipError
    from ..recipe.recipefile import find_recipes

    paths = [Path(r) for r in args.recipes or ["recipes"]]
    files = find_recipes(paths)
    if not files:
        raise VenvshipError(f"no recipes found in {' '.join(map(str, paths))}")
    return files


def run_check(args: argparse.Namespace) -> int:
    """Check the recipes; print one line per valid recipe, raise every fault at once."""
    from ..errors import RecipeProblems
    from ..recipe.recipefile import check_recipes

    recipes, faults = check_recipes(_files(args))
    if args.json and not faults:
        doc = [{"recipe": str(r.path), "name": r.name, "version": r.version} for r in recipes]
        print(json_text({"recipes": doc}, indent=2))
    elif not args.json:
        for r in recipes:
            print(f"{r.path}: ok ({r.name} {r.version}, {len(r.packages)} packages)")
    if faults:
        raise RecipeProblems([str(f) for f in faults])
    return 0


def run_refs(args: argparse.Namespace) -> int:
    """Print each recipe's ``NAME:TAG`` (the index tag), or them as JSON."""
    from ..artifact.documents import tag_for_version
    from ..recipe.recipefile import load_recipes

    recipes = load_recipes(_files(args))
    if args.json:
        doc = [
            {
                "recipe": str(r.path),
                "name": r.name,
                "version": r.version,
                "tag": tag_for_version(r.version),
                "ref": f"{r.name}:{tag_for_version(r.version)}",
            }
            for r in recipes
        ]
        print(json_text({"refs": doc}, indent=2))
        return 0
    for r in recipes:
        print(f"{r.name}:{tag_for_version(r.version)}")
    return 0
