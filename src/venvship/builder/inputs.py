"""A recipe's build inputs on disk (requirement and constraint files) and their digest."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from ..errors import RecipeError
from ..recipe import Recipe

_FILE_OPT = re.compile(r"^(-c|--constraint|-r|--requirement)\s+(?P<path>\S+)$")


@dataclass(frozen=True)
class Inputs:
    """Files handed to pip, and the digest of everything that decides the build's result."""

    requirements: tuple[str, ...]
    constraint_args: tuple[str, ...]
    global_args: tuple[str, ...]
    digest: str
    builder_digest: str  # what the builder venv depends on: not the packages, only the tools


def _fetch(url: str, dest: Path, where: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data: bytes = resp.read()
    except OSError as exc:
        raise RecipeError(where, f"cannot fetch constraints {url}: {exc}") from exc
    dest.write_bytes(data)
    return data


def prepare(recipe: Recipe, workdir: Path) -> Inputs:
    """Write the requirement and constraint files for ``recipe`` into ``workdir``.

    URL constraint lines (``name @ git+URL@sha``) say where that distribution comes from, so
    they join the requirements (pip refuses links as constraints). Remote constraint files are
    fetched once here, so their content, not their URL, decides whether anything changed.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    where = f"{recipe.path}: venv.constraints"
    requirements = list(recipe.packages)
    lines: list[str] = []
    for n, line in enumerate(recipe.constraints):
        opt = _FILE_OPT.match(line)
        if opt:
            target = opt.group("path")
            if "://" in target:
                local = workdir / f"constraints-{n}.txt"
                content = _fetch(target, local, where)
            else:
                local = Path(target)
                content = local.read_bytes()
            hasher.update(content)
            lines.append(f"{opt.group(1)} {local}")
        elif not line.startswith("-") and Requirement(line).url:
            req = Requirement(line)
            # The URL replaces a bare-name requirement of the same distribution.
            requirements = [r for r in requirements if Requirement(r).name.lower() != req.name.lower()]
            requirements.append(line)
        else:
            lines.append(line)
    files_only = hasher.copy()
    (workdir / "global-constraints.txt").write_text("".join(f"{c}\n" for c in recipe.global_constraints))
    (workdir / "source-constraints.txt").write_text("".join(f"{c}\n" for c in lines))
    global_args = ("-c", str(workdir / "global-constraints.txt"))
    hasher.update(
        json.dumps(
            {
                "packages": sorted(requirements),
                "global": recipe.global_constraints,
                # Paths differ between machines; file contents were hashed above.
                "constraints": [ln for ln in lines if not _FILE_OPT.match(ln)],
                "build-requirements": recipe.build_requirements,
                "build": [
                    recipe.build.distro_packages,
                    recipe.build.pip_args,
                    sorted((recipe.build.env or {}).items()),
                ],
                "install-tool": recipe.install_tool,
                "python": recipe.python,
            },
            sort_keys=True,
        ).encode()
    )
    files_digest = files_only
    files_digest.update(
        json.dumps(
            [
                recipe.global_constraints,
                recipe.build_requirements,
                recipe.build.pip_args,
                sorted((recipe.build.env or {}).items()),
                [ln for ln in lines if not _FILE_OPT.match(ln)],
            ]
        ).encode()
    )
    return Inputs(
        requirements=tuple(sorted(requirements)),
        constraint_args=(*global_args, "-c", str(workdir / "source-constraints.txt")),
        global_args=global_args,
        digest="sha256:" + hasher.hexdigest(),
        builder_digest="sha256:" + files_digest.hexdigest(),
    )
