"""Build one recipe for this host's platform: resolve, lock, get wheels, package, write the layout."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .. import __version__, distro
from .._fsutil import atomic_write, file_lock
from .._log import logger
from ..artifact import (
    Fact,
    Manifest,
    PlatformInfo,
    VenvConfig,
    Wheel,
    canonical_json,
    platform_key,
    tag_for_version,
)
from ..hostinfo import distro_key, go_arch, probe_python
from ..oci.layout import Layout
from ..oci.source import Access
from ..recipe import Recipe
from .inputs import prepare
from .package import write_to_layout
from .pins import BUILD_TOOLS, pinned
from .resolution import resolve_recipe
from .reuse import previous_wheels
from .tags import glibc_floor, is_distro_bound
from .toolvenv import ensure_builder
from .wheels import WheelCache, acquire


@dataclass(frozen=True)
class BuildResult:
    """What building one recipe did."""

    name: str
    ref: str
    digest: str
    status: Literal["built", "unchanged", "outdated"]  # outdated: only with check=True
    packages: int
    built: tuple[str, ...] = ()
    downloaded: tuple[str, ...] = ()
    cached: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    blobs_written: int = 0


def default_cache() -> Path:
    """Return the build cache folder: $VENVSHIP_CACHE, else $XDG_CACHE_HOME/venvship."""
    if os.environ.get("VENVSHIP_CACHE"):
        return Path(os.environ["VENVSHIP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "venvship"


def _state_file(cache: Path, layout: Layout, name: str, key: str) -> Path:
    where = hashlib.sha256(str(layout.root.resolve()).encode()).hexdigest()[:16]
    return cache / "state" / where / f"{name}-{key}.json"


def _unchanged(layout: Layout, ref_name: str, digest: str) -> bool:
    """True if ``ref_name`` still points at ``digest`` and every blob it needs is present."""
    desc = layout.refs().get(ref_name)
    if desc is None or desc.digest != digest or not layout.has_blob(digest, desc.size):
        return False
    manifest = Manifest.from_bytes(layout.read_blob(digest))
    return all(layout.has_blob(d.digest, d.size) for d in (manifest.config, *manifest.layers))


def build_recipe(
    recipe: Recipe,
    *,
    output: Layout,
    cache: Path | None = None,
    reuse_from: str | None = None,
    reuse_access: Access | None = None,
    rebuild_wheels: bool = False,
    refresh: bool = False,
    distro_packages: bool = True,
    check: bool = False,
) -> BuildResult:
    """Build ``recipe`` for this host and write it into ``output``; return what was done.

    A second call with the same inputs does nothing and returns status ``unchanged``. With
    ``check``, nothing is built or written: status ``outdated`` says a build would happen.
    ``distro_packages=False`` leaves the build distro packages to someone else. ``reuse_access``
    says how to reach ``reuse_from`` when it is in a registry.

    Example: ``build_recipe(load_recipe(Path("recipes/demo.toml")), output=Layout.create(Path("build/oci")))``
    """
    cache = cache or default_cache()
    interp = probe_python(recipe.python)
    arch = go_arch(interp.machine)
    dkey = distro_key()
    pkey = platform_key(distro=dkey, architecture=arch, abi=interp.info.abi)
    tag = f"{tag_for_version(recipe.version)}-{pkey}"
    ref_name = f"{recipe.name}:{tag}"
    workdir = cache / "work" / f"{recipe.name}-{pkey}"

    with file_lock(cache / "locks" / f"{recipe.name}-{pkey}.lock"):
        shutil.rmtree(workdir, ignore_errors=True)
        inputs = prepare(recipe, workdir / "inputs")
        fingerprint = hashlib.sha256(
            canonical_json(
                {
                    "inputs": inputs.digest,
                    "recipe": _install_side(recipe),
                    "python": interp.info.version,
                    "platform": pkey,
                    "venvship": __version__,
                }
            )
        ).hexdigest()
        state_file = _state_file(cache, output, recipe.name, pkey)
        if not (rebuild_wheels or refresh):
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("fingerprint") == fingerprint and _unchanged(output, ref_name, state["digest"]):
                shutil.rmtree(workdir, ignore_errors=True)
                return BuildResult(
                    name=recipe.name,
                    ref=ref_name,
                    digest=state["digest"],
                    status="unchanged",
                    packages=int(state.get("packages", 0)),
                )
        if check:
            shutil.rmtree(workdir, ignore_errors=True)
            return BuildResult(name=recipe.name, ref=ref_name, digest="", status="outdated", packages=0)

        if distro_packages:
            distro.ensure(
                "build",
                recipe.build.distro_packages,
                state=recipe.distro_package_state,
                cache_valid_time=recipe.distro_cache_valid_time,
            )
        builder = ensure_builder(
            python=interp.path,
            cache=cache,
            requirements=recipe.build_requirements,
            constraint_args=inputs.constraint_args,
            global_args=inputs.global_args,
            bootstrap=pinned(BUILD_TOOLS, global_constraints=inputs.global_constraints),
            pip_args=recipe.build.pip_args,
            env=recipe.build.env or {},
            ignore_pip_config=recipe.ignore_pip_config,
            fingerprint=inputs.builder_digest,
            rebuild=rebuild_wheels and refresh,
        )
        resolution = resolve_recipe(
            recipe,
            builder,
            inputs,
            key=f"{pkey} {interp.info.version}",
            cache=cache,
            workdir=workdir,
            refresh=refresh or rebuild_wheels,
        )
        if resolution.reused:
            logger.info(
                "%s: inputs resolved before; the same closure is used (--refresh asks pip again)", recipe.name
            )
        items, tool_items = resolution.packages, resolution.tools

        reuse = (
            previous_wheels(
                reuse_from, platform_key=pkey, scratch=workdir / "reuse-blobs", access=reuse_access
            )
            if reuse_from
            else None
        )
        wcache = WheelCache(cache / "wheels")
        got = acquire(
            [*items, *tool_items],
            builder=builder,
            cache=wcache,
            platform_key=pkey,
            pip_args=recipe.build.pip_args,
            workdir=workdir / "wheels",
            rebuild=rebuild_wheels,
            reuse=reuse,
        )
        lock_wheels = got.wheels[: len(items)]
        tool_wheels = got.wheels[len(items) :]
        all_names = [w.wheel.filename for w in got.wheels]
        bound = is_distro_bound(all_names)
        config = VenvConfig(
            name=recipe.name,
            version=recipe.version,
            recipe_digest=inputs.digest,
            install_path=str(recipe.install_path),
            python=interp.info,
            platform=PlatformInfo(
                os="linux",
                architecture=arch,
                distro=dkey,
                glibc=interp.glibc if bound else glibc_floor(all_names),
                distro_bound=bound,
            ),
            lock=tuple(sorted((w.wheel for w in lock_wheels), key=lambda w: w.name.lower())),
            tools=tuple(w.wheel for w in tool_wheels),
            install_tool=recipe.install_tool,
            requirements=recipe.packages,
            constraints=tuple(_as_given(c, recipe) for c in recipe.constraints),
            global_constraints=recipe.global_constraints,
            distro_package_state=recipe.distro_package_state,
            distro_cache_valid_time=recipe.distro_cache_valid_time,
            install_distro_packages=recipe.install.distro_packages,
            install_pip_args=recipe.install.pip_args,
            install_env=dict(recipe.install.env or {}),
            symlink_system_packages=recipe.symlink_system_packages,
            facts=recipe.facts,
            builder={"venvship": __version__, **{k: v for k, v in sorted(builder.tools.items())}},
            provenance={w.wheel.filename: i.source for w, i in zip(got.wheels, [*items, *tool_items])},
        )
        files = {w.wheel.digest: w.path for w in got.wheels}
        packaged = write_to_layout(output, config, files)
        atomic_write(
            state_file,
            json.dumps(
                {"fingerprint": fingerprint, "digest": packaged.digest, "packages": len(config.lock)}
            ).encode(),
        )
        shutil.rmtree(workdir, ignore_errors=True)
        logger.info(
            "%s: %d built, %d downloaded, %d cached, %d reused",
            ref_name,
            len(got.built),
            len(got.downloaded),
            len(got.cached),
            len(got.reused),
        )
        return BuildResult(
            name=recipe.name,
            ref=ref_name,
            digest=packaged.digest,
            status="built",
            packages=len(config.lock),
            built=tuple(got.built),
            downloaded=tuple(got.downloaded),
            cached=tuple(got.cached),
            reused=tuple(got.reused),
            blobs_written=packaged.blobs_written,
        )


def _install_side(recipe: Recipe) -> dict[str, object]:
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


__all__ = ["BuildResult", "Fact", "Wheel", "build_recipe", "default_cache"]
