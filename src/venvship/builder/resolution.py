"""A recipe's closure, its packages' and its install tool's, resolved once per set of inputs.

The inputs digest covers everything that decides pip's answer (requirements, constraint file
contents, pip arguments and environment, install tool), so a build whose inputs resolved before
takes the stored answer, as the make-style no-op does; ``refresh`` asks pip again.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .._fsutil import atomic_write, mark_used
from .._log import activity
from ..errors import BuildError, RecipeError
from ..recipe.recipefile import Recipe
from .inputs import Inputs
from .locked import locked_closure
from .pins import INSTALL_TOOLS, pinned
from .resolve import ResolutionError, Resolved, resolve
from .sandbox import Sandbox
from .toolvenv import Builder


@dataclass(frozen=True)
class Resolution:
    """The locked closure: the recipe's distributions and the install tool's."""

    packages: tuple[Resolved, ...]
    tools: tuple[Resolved, ...]
    reused: bool  # taken from an earlier resolve of the same inputs


def _stored(path: Path) -> Resolution | None:
    """Return the resolution stored at ``path`` by an earlier resolve of the same inputs, if any."""
    try:
        data = json.loads(path.read_text())
        return Resolution(
            packages=tuple(Resolved(**r) for r in data["packages"]),
            tools=tuple(Resolved(**r) for r in data["tools"]),
            reused=True,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _unreachable(recipe: Recipe, exc: ResolutionError) -> None:
    """Raise a network error when pip could not fetch an index page: then "from versions: none"
    or a conflict says nothing about the recipe."""
    if exc.unreachable:
        pages = "\n".join(f"  {page}" for page in exc.unreachable)
        raise BuildError(
            f"{recipe.path}: cannot reach the package index, so nothing was resolved "
            f"(check the network, and the index options in venv.build.pip-args or pip's "
            f"configuration):\n{pages}\npip then said:\n{exc.detail}"
        ) from exc


def _packages(
    recipe: Recipe, builder: Builder, inputs: Inputs, *, key: str, sandbox: Sandbox
) -> list[Resolved]:
    """Return the recipe's closure: its lock's packages for this platform, else pip's resolve."""
    if inputs.lock is not None:
        return locked_closure(
            inputs.lock,
            builder,
            platform=key.split(" ", 1)[0],
            packages=inputs.requirements,
            extras=recipe.lock_extras,
            groups=recipe.lock_groups,
            constraints=inputs.constraints,
            global_constraints=inputs.global_constraints,
            where=f"{recipe.path}: venv",
            pip_args=recipe.build.pip_args,
            sandbox=sandbox,
        )
    return resolve(
        builder,
        inputs.requirements,
        constraint_args=inputs.constraint_args,
        pip_args=recipe.build.pip_args,
        sandbox=sandbox,
        name="resolve",
    )


def resolve_recipe(
    recipe: Recipe,
    builder: Builder,
    inputs: Inputs,
    *,
    key: str,
    cache: Path,
    sandbox: Sandbox,
    refresh: bool = False,
) -> Resolution:
    """Resolve ``recipe``'s packages and install tool (``key``: the platform and python they are for).

    Example: ``resolve_recipe(recipe, builder, inputs, key="debian-12-amd64-cp311 3.11.2", ...)``
    """
    stored = cache / "resolutions" / f"{hashlib.sha256(f'{inputs.digest} {key}'.encode()).hexdigest()}.json"
    earlier = None if refresh else _stored(stored)
    if earlier is not None:
        mark_used(stored)
        return earlier
    with activity("resolving"), ThreadPoolExecutor(max_workers=1) as pool:
        # The install tool resolves on its own; its pip run overlaps the packages' one.
        tools = pool.submit(
            resolve,
            builder,
            pinned(
                {recipe.install_tool: INSTALL_TOOLS[recipe.install_tool]},
                global_constraints=inputs.global_constraints,
            ),
            constraint_args=inputs.global_args,
            pip_args=recipe.build.pip_args,
            sandbox=sandbox,
            name="resolve-tools",
            extra_args=("--only-binary", ":all:"),
        )
        try:
            packages = _packages(recipe, builder, inputs, key=key, sandbox=sandbox)
        except ResolutionError as exc:
            _unreachable(recipe, exc)
            raise RecipeError(f"{recipe.path}: venv.packages", f"cannot resolve:\n{exc.detail}") from exc
        try:
            tool_items = tools.result()
        except ResolutionError as exc:
            _unreachable(recipe, exc)
            raise RecipeError(
                f"{recipe.path}: venv.install-tool",
                f"no {recipe.install_tool} wheel for this platform:\n{exc.detail}",
            ) from exc
    result = Resolution(packages=tuple(packages), tools=tuple(tool_items), reused=False)
    # A local folder can change without the inputs changing: its answer is never stored.
    if all(r.kind != "dir" for r in (*result.packages, *result.tools)):
        body = {"packages": [asdict(r) for r in result.packages], "tools": [asdict(r) for r in result.tools]}
        atomic_write(stored, json.dumps(body, indent=1, sort_keys=True).encode())
    return result
