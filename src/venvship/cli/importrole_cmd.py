"""``venvship import-role VARS.yml``: the original role's variables → a recipe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .outcome import add_command, add_output_options, json_text


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``import-role`` subcommand on ``sub``."""
    p = add_command(
        sub,
        "import-role",
        help="turn the original role's venv_* variables (YAML) into a recipe",
        description="Read a YAML file of python_venv_build variables and write the equivalent recipe.",
        example="venvship import-role keystone-vars.yml -o recipes/keystone.toml",
    )
    p.add_argument("vars_file", metavar="VARS.yml", help="a mapping of venv_* variables")
    p.add_argument("-o", "--output", metavar="PATH", help="write the recipe here (default: print it)")
    p.add_argument(
        "--name", help="artifact name (default: from the install path, keystone-31.0.0 → keystone)"
    )
    p.add_argument(
        "--version",
        dest="recipe_version",
        metavar="VERSION",
        help="artifact version (default: from the install path, keystone-31.0.0 → 31.0.0)",
    )
    p.add_argument(
        "--keep-templates",
        action="store_true",
        help="keep values that still hold Jinja as strings to fill in by hand, instead of failing",
    )
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import the variables; print warnings to stderr and the path written (or the TOML) to stdout."""
    from ..recipe.importrole import ImportRoleError, import_role_file, write_recipe

    try:
        result = import_role_file(
            Path(args.vars_file),
            name=args.name,
            version=args.recipe_version,
            keep_templates=args.keep_templates,
        )
    except ImportRoleError as exc:
        # Every fault on its own line, so one run shows all that needs fixing.
        for line in exc.warnings:
            print(line, file=sys.stderr)
        for line in exc.problems:
            print(f"venvship: error: {line}", file=sys.stderr)
        if args.json:
            print(json_text({"error": "\n".join(exc.problems), "warnings": list(exc.warnings)}))
        return 1
    for line in result.warnings:
        print(line, file=sys.stderr)
    if args.output:
        write_recipe(result, Path(args.output), force=args.force)
    if args.json:
        data = {"output": args.output, "recipe": result.toml, "warnings": list(result.warnings)}
        print(json_text(data, indent=2))
    elif args.output:
        print(args.output)
    else:
        sys.stdout.write(result.toml)
    return 0
