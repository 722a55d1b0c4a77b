"""Build a recipe on this host, into its blob cache, and install it from there (no build host).

The blob cache is an OCI image layout (DESIGN §5), so the build writes its artifact straight into
it and the installer reads it back by reference: the same code path as
``venv-pull install oci:CACHE:NAME:TAG``, with the same generations, facts and no-op.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..builder.recipebuild import BuildOptions, BuildResult, build_recipe
from ..errors import InstallError
from ..host.trust import trusted_dir
from ..install import cachestore
from ..install.generations import Generations
from ..install.installer import InstallOptions, InstallResult, install
from ..oci.layout import Layout
from ..oci.reference import LayoutRef
from ..recipe.recipefile import Recipe


@dataclass(frozen=True)
class LocalInstallResult:
    """What building and installing one recipe on this host did (or, with check, would do)."""

    build: BuildResult
    install: InstallResult


def install_recipe(
    recipe: Recipe, options: InstallOptions, *, build: BuildOptions | None = None
) -> LocalInstallResult:
    """Build ``recipe`` into the blob cache ``options.cache`` and install it; return both results.

    With ``options.check`` nothing is built or written: if the recipe's inputs changed since the
    last build, the result says ``changed`` with an empty digest (the new digest is known only
    once built); otherwise it is the installer's own check of the cached artifact.

    Example: ``install_recipe(load_recipe(Path("recipes/demo.toml")), InstallOptions())``
    """
    dest = options.dest or Path(str(recipe.install_path))
    if not dest.is_absolute():
        raise InstallError(f"{dest}: the destination must be an absolute path")
    cache = options.cache.absolute()
    building = dataclasses.replace(
        build or BuildOptions(), distro_packages=options.distro_packages, check=options.check
    )
    options = dataclasses.replace(options, cache=cache)
    if options.check:
        built = build_recipe(recipe, output=Layout(cache), options=building)
        if built.status == "outdated":
            return LocalInstallResult(build=built, install=_would_install(recipe, dest))
        return LocalInstallResult(build=built, install=install(_ref(cache, built), options))
    # Shared hold on the cache from build to install: a concurrent `venv-pull prune` must not
    # collect the new blobs before the installer has recorded that this destination uses them.
    trusted_dir(cache, what="the blob cache")
    with cachestore.cache_lock(cache, shared=True, timeout=options.lock_timeout):
        built = build_recipe(recipe, output=Layout.create(cache), options=building)
        return LocalInstallResult(build=built, install=install(_ref(cache, built), options))


def _ref(cache: Path, built: BuildResult) -> LayoutRef:
    # The per-platform ref, not the index: it is exactly what was built here, and `venv-pull
    # prune` keeps it (the cache's refs record manifests, configs and wheels, not indexes).
    name, _, tag = built.ref.partition(":")
    return LayoutRef(path=cache, name=name, tag=tag)


def _would_install(recipe: Recipe, dest: Path) -> InstallResult:
    gens = Generations(dest)
    current = gens.current_id()
    live = gens.read_state(current) if current else None
    return InstallResult(
        changed=True,
        dest=str(gens.dest),
        digest="",
        previous_digest=live.digest if live else "",
        generation="",
        packages=0,
        facts_written=False,
        check=True,
    )


__all__ = ["LocalInstallResult", "install_recipe"]
