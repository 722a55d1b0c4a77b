"""The platform a build is for, and the config blob it writes (DESIGN §4): what the recipe, the lock
and the build host put into it, published without secrets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..artifact.documents import (
    PlatformInfo,
    VenvConfig,
    Wheel,
    platform_key,
    tag_for_version,
)
from ..host.info import Interpreter, distro_key, go_arch, probe_python
from ..recipe.recipefile import Recipe
from ..redact import redact
from .inputs import Inputs
from .tags import glibc_floor, is_distro_bound
from .toolvenv import Builder


@dataclass(frozen=True)
class Target:
    """The platform this host builds for, and where the recipe's artifact goes."""

    interp: Interpreter
    architecture: str
    distro: str
    key: str  # debian-12-amd64-cp311
    ref_name: str  # name:version-key


def build_target(recipe: Recipe) -> Target:
    """Return the platform this host builds ``recipe`` for (its interpreter probed now)."""
    interp = probe_python(recipe.python)
    arch, dkey = go_arch(interp.machine), distro_key()
    key = platform_key(distro=dkey, architecture=arch, abi=interp.info.abi)
    return Target(
        interp=interp,
        architecture=arch,
        distro=dkey,
        key=key,
        ref_name=f"{recipe.name}:{tag_for_version(recipe.version)}-{key}",
    )


def venv_config(
    recipe: Recipe,
    inputs: Inputs,
    target: Target,
    *,
    lock: tuple[Wheel, ...],
    tools: tuple[Wheel, ...],
    builder: Builder,
    provenance: dict[str, dict[str, str]],
) -> VenvConfig:
    """Return the config blob of ``recipe``'s build for ``target``."""
    names = [w.filename for w in (*lock, *tools)]
    bound = is_distro_bound(names)
    return VenvConfig(
        name=recipe.name,
        version=recipe.version,
        recipe_digest=inputs.digest,
        install_path=str(recipe.install_path),
        python=target.interp.info,
        platform=PlatformInfo(
            os="linux",
            architecture=target.architecture,
            distro=target.distro,
            glibc=target.interp.glibc if bound else glibc_floor(names),
            distro_bound=bound,
        ),
        lock=lock,
        tools=tools,
        install_tool=recipe.install_tool,
        # Published: URLs lose their user info and query (a token in them is no one else's business).
        requirements=tuple(redact(r) for r in recipe.packages),
        constraints=tuple(redact(_as_given(c, recipe)) for c in recipe.constraints),
        global_constraints=tuple(redact(c) for c in recipe.global_constraints),
        distro_package_state=recipe.distro_package_state,
        distro_cache_valid_time=recipe.distro_cache_valid_time,
        install_distro_packages=recipe.install.distro_packages,
        install_pip_args=recipe.install.pip_args,
        install_env=dict(recipe.install.env or {}),
        symlink_system_packages=recipe.symlink_system_packages,
        facts=recipe.facts,
        builder={"venvship": __version__, **dict(sorted(builder.tools.items()))},
        provenance=provenance["all"],
        download_urls=provenance["urls"],
    )


def install_side(recipe: Recipe) -> dict[str, object]:
    """The recipe fields that reach the config without changing the wheels."""
    return {
        "name": recipe.name,
        "version": recipe.version,
        "install_path": str(recipe.install_path),
        "distro": [recipe.distro_package_state, recipe.distro_cache_valid_time],
        "install": [
            recipe.install.distro_packages,
            recipe.install.pip_args,
            sorted((recipe.install.env or {}).items()),
        ],
        "symlinks": recipe.symlink_system_packages,
        "facts": [[f.file, f.section, f.option, f.value] for f in recipe.facts],
    }


def _as_given(line: str, recipe: Recipe) -> str:
    """Return a constraint line with absolute local paths made relative to the recipe's folder again."""
    for prefix in ("-c ", "--constraint ", "-r ", "--requirement "):
        if line.startswith(prefix):
            path = Path(line[len(prefix) :])
            try:
                return prefix + str(path.relative_to(recipe.folder.resolve()))
            except ValueError:
                return line
    return line
