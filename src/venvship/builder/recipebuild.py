"""Build one recipe for this host's platform: resolve, lock, get wheels, make the ready-to-run
layers, package, write the layout."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .. import __version__
from .._fsutil import atomic_write, disk_space, file_lock, mark_used
from .._log import activity, logger
from ..artifact.documents import (
    Fact,
    Manifest,
    Wheel,
    canonical_json,
)
from ..host import distro
from ..oci.attach import LayoutStore
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.retag import Retag
from ..oci.source import Access
from ..recipe.recipefile import Recipe
from .cachecare import using_cache
from .cachedir import build_cache
from .configblob import Target, build_target, install_side, venv_config
from .evidence import attach_evidence
from .inputs import Inputs, prepare
from .layers import Tool, make_layers
from .package import write_to_layout
from .pins import BUILD_TOOLS, pinned
from .resolution import resolve_recipe
from .reuse import previous_wheels
from .sandbox import Sandbox, sandbox
from .targetchecks import check_from_wheels_tool, check_install_args, check_python_source, check_symlinks
from .toolvenv import Builder, BuilderSpec, ensure_builder
from .wheels import Acquired, WheelCache, acquire

Status = Literal["built", "unchanged", "outdated"]  # outdated: only with check=True


@dataclass(frozen=True)
class BuildResult:
    """What building one recipe did."""

    name: str
    ref: str
    digest: str
    status: Status
    packages: int
    built: tuple[str, ...] = ()
    downloaded: tuple[str, ...] = ()
    cached: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    blobs_written: int = 0
    retagged: tuple[Retag, ...] = ()  # existing tags of the output this build moved

    def summary(self) -> str:
        """Return the one line both front ends print for this result."""
        if self.status == "unchanged":
            return f"{self.name}: unchanged ({self.ref} {self.digest[:19]})"
        if self.status == "outdated":
            return f"{self.name}: outdated ({self.ref} would be built)"
        return (
            f"{self.name}: built {self.ref} {self.digest[:19]}: {self.packages} packages; "
            f"wheels {len(self.built)} built, {len(self.downloaded)} downloaded, "
            f"{len(self.cached)} cached, {len(self.reused)} reused; {self.blobs_written} blobs written"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ref": self.ref,
            "digest": self.digest,
            "status": self.status,
            "packages": self.packages,
            "built": list(self.built),
            "downloaded": list(self.downloaded),
            "cached": list(self.cached),
            "reused": list(self.reused),
            "blobs_written": self.blobs_written,
            "retagged": [r.to_json() for r in self.retagged],
        }


@dataclass(frozen=True)
class BuildOptions:
    """How to build: where the cache is, what to reuse or ignore, what to leave alone."""

    cache: Path | None = None
    pythons: tuple[str, ...] = ()  # interpreters to build for besides the recipe's own
    reuse_from: Ref | None = None
    reuse_access: Access | None = None
    reuse_policy: Path | None = None  # trust policy a previous artifact must satisfy for built wheels
    rebuild_wheels: bool = False
    refresh: bool = False
    distro_packages: bool = True
    check: bool = False
    immutable_tags: bool = False  # refuse to move an existing tag to other content


def default_cache() -> Path:
    """Return the build cache folder: $VENVSHIP_CACHE, else $XDG_CACHE_HOME/venvship."""
    if os.environ.get("VENVSHIP_CACHE"):
        return Path(os.environ["VENVSHIP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "venvship"


def build_recipe(
    recipe: Recipe, *, output: Layout, options: BuildOptions | None = None, python: str | None = None
) -> BuildResult:
    """Build ``recipe`` for this host and ``python`` (default: the recipe's first) and write it into
    ``output``; return what was done.

    A second call with the same inputs does nothing and returns status ``unchanged``. With
    ``options.check``, nothing is built or written: status ``outdated`` says a build would happen.

    Example: ``build_recipe(load_recipe(Path("recipes/demo.toml")), output=Layout.create(Path("build/oci")))``
    """
    opts = options or BuildOptions()
    if python is not None:
        recipe = dataclasses.replace(recipe, python=python)
    cache = build_cache(opts.cache or default_cache())
    target = build_target(recipe)
    check_python_source(recipe, target.interp)
    workdir = cache / "work" / f"{recipe.name}-{target.key}"
    lock = cache / "locks" / f"{recipe.name}-{target.key}.lock"
    with (
        using_cache(cache),
        disk_space(cache, output.root),
        file_lock(lock),
        sandbox(interpreters=[target.interp.path]) as sb,
    ):
        shutil.rmtree(workdir, ignore_errors=True)
        try:
            # Where pip reads them: the build user reads, never changes, the build's inputs.
            inputs = prepare(recipe, sb.shared("inputs"))
            fingerprint = _fingerprint(recipe, inputs, target)
            state_file = _state_file(cache, output, recipe.name, target.key)
            done = (
                None
                if opts.rebuild_wheels or opts.refresh
                else _unchanged(output, target, state_file, fingerprint)
            )
            if done is None and opts.check and opts.distro_packages:
                _, todo = distro.pending("build", **_distro_args(recipe))
                if todo is not None:
                    logger.info("%s", todo.describe(verb="would run"))
            if done is not None or opts.check:
                return done or BuildResult(
                    name=recipe.name, ref=target.ref_name, digest="", status="outdated", packages=0
                )
            result = _build(
                recipe, inputs, target, output=output, cache=cache, workdir=workdir, sandbox=sb, opts=opts
            )
            state = {"fingerprint": fingerprint, "digest": result.digest, "packages": result.packages}
            atomic_write(state_file, json.dumps(state).encode())
            return result
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _fingerprint(recipe: Recipe, inputs: Inputs, target: Target) -> str:
    """Return the digest of everything that decides the artifact: inputs, install side, platform."""
    doc = {
        "inputs": inputs.digest,
        "recipe": install_side(recipe),
        "python": target.interp.info.version,
        "platform": target.key,
        "venvship": __version__,
    }
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def _state_file(cache: Path, layout: Layout, name: str, key: str) -> Path:
    where = hashlib.sha256(str(layout.root.resolve()).encode()).hexdigest()[:16]
    return cache / "state" / where / f"{name}-{key}.json"


def _unchanged(layout: Layout, target: Target, state_file: Path, fingerprint: str) -> BuildResult | None:
    """Return the ``unchanged`` result if the last build had these inputs and its blobs are all there."""
    try:
        state = json.loads(state_file.read_text())
        digest, packages = str(state["digest"]), int(state.get("packages", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    desc = layout.refs().get(target.ref_name)
    if state.get("fingerprint") != fingerprint or desc is None or desc.digest != digest:
        return None
    if not layout.has_blob(digest, desc.size):
        return None
    manifest = Manifest.from_bytes(layout.read_blob(digest))
    if not all(layout.has_blob(d.digest, d.size) for d in (manifest.config, *manifest.layers)):
        return None
    name = target.ref_name.split(":", 1)[0]
    mark_used(state_file)
    return BuildResult(name=name, ref=target.ref_name, digest=digest, status="unchanged", packages=packages)


def _build(
    recipe: Recipe,
    inputs: Inputs,
    target: Target,
    *,
    output: Layout,
    cache: Path,
    workdir: Path,
    sandbox: Sandbox,
    opts: BuildOptions,
) -> BuildResult:
    """Resolve, get the wheels, make the layers and write the artifact (the inputs changed)."""
    if opts.distro_packages:
        distro.ensure("build", **_distro_args(recipe))
    with activity("preparing the builder venv"):
        builder = _builder(
            recipe, inputs, target, cache=cache, sandbox=sandbox, rebuild=opts.rebuild_wheels and opts.refresh
        )
    got, provenance = _wheels(
        recipe, inputs, target, builder, cache=cache, workdir=workdir, sandbox=sandbox, opts=opts
    )
    n_lock = len(got.wheels) - len(provenance["tools"])
    lock = tuple(sorted((w.wheel for w in got.wheels[:n_lock]), key=lambda w: w.name.lower()))
    tools = tuple(w.wheel for w in got.wheels[n_lock:])
    files = {w.wheel.digest: w.path for w in got.wheels}
    tool = _tool(recipe, tools, files)
    # What would fail only on the targets, found here now that the lock is known.
    with activity("checking the install against the targets' rules"):
        check_install_args(recipe, tool, python=target.interp.path, workdir=workdir / "checks")
        check_symlinks(
            recipe, {w: files[w.digest] for w in lock}, minor=int(target.interp.info.version.split(".")[1])
        )
    with activity("making ready-to-run layers"):
        layers, layer_files = make_layers(
            lock, files, python=target.interp.path, tool=tool, cache=cache, workdir=workdir / "layers"
        )
    config = dataclasses.replace(
        venv_config(recipe, inputs, target, lock=lock, tools=tools, builder=builder, provenance=provenance),
        layers=layers,
    )
    check_from_wheels_tool(recipe, config)
    with activity(f"writing {target.ref_name}"):
        packaged = write_to_layout(
            output, config, {**files, **layer_files}, immutable_tags=opts.immutable_tags
        )
    with activity("attaching the SBOM and provenance"):
        attach_evidence(
            LayoutStore(output, recipe.name),
            packaged.manifest,
            recipe=recipe,
            inputs=inputs,
            config=config,
            ref_name=target.ref_name,
            wheel_files=files,
        )
    return BuildResult(
        name=recipe.name,
        ref=target.ref_name,
        digest=packaged.digest,
        status="built",
        packages=len(config.lock),
        built=tuple(got.built),
        downloaded=tuple(got.downloaded),
        cached=tuple(got.cached),
        reused=tuple(got.reused),
        blobs_written=packaged.blobs_written,
        retagged=packaged.retagged,
    )


def _distro_args(recipe: Recipe) -> dict[str, Any]:
    """Return the build distro packages of ``recipe`` as :func:`distro.ensure` takes them."""
    return {
        "extra": recipe.build.distro_packages,
        # Only made present: "latest" is for the targets' runtime packages. On the build host it
        # would upgrade packages at every build with work to do, which is the host's own upkeep.
        "state": "present",
        "cache_valid_time": recipe.distro_cache_valid_time,
    }


def _builder(
    recipe: Recipe, inputs: Inputs, target: Target, *, cache: Path, sandbox: Sandbox, rebuild: bool
) -> Builder:
    spec = BuilderSpec(
        python=target.interp.path,
        requirements=recipe.build_requirements,
        constraint_args=inputs.constraint_args,
        global_args=inputs.global_args,
        bootstrap=pinned(BUILD_TOOLS, global_constraints=inputs.global_constraints),
        pip_args=recipe.build.pip_args,
        env=recipe.build.env or {},
        ignore_pip_config=recipe.ignore_pip_config,
    )
    return ensure_builder(
        spec, cache=cache, fingerprint=inputs.builder_digest, sandbox=sandbox, rebuild=rebuild
    )


def _wheels(
    recipe: Recipe,
    inputs: Inputs,
    target: Target,
    builder: Builder,
    *,
    cache: Path,
    workdir: Path,
    sandbox: Sandbox,
    opts: BuildOptions,
) -> tuple[Acquired, dict[str, dict[str, str]]]:
    """Resolve the closure and get a wheel for each of its distributions and for the install tool.

    Returns the wheels (the lock's first, then the tool's) and where each came from.
    """
    resolution = resolve_recipe(
        recipe,
        builder,
        inputs,
        key=f"{target.key} {target.interp.info.version}",
        cache=cache,
        sandbox=sandbox,
        refresh=opts.refresh or opts.rebuild_wheels,
    )
    if resolution.reused:
        logger.info(
            "%s: inputs resolved before; the same closure is used (--refresh asks pip again)", recipe.name
        )
    items = [*resolution.packages, *resolution.tools]
    reuse = None
    if opts.reuse_from is not None:
        reuse = previous_wheels(
            opts.reuse_from,
            platform_key=target.key,
            scratch=workdir / "reuse-blobs",
            access=opts.reuse_access,
            policy=opts.reuse_policy,
        )
    got = acquire(
        items,
        builder=builder,
        cache=WheelCache(cache / "wheels"),
        platform_key=target.key,
        pip_args=recipe.build.pip_args,
        workdir=workdir / "wheels",
        sandbox=sandbox,
        rebuild=opts.rebuild_wheels,
        reuse=reuse,
    )
    sources = {w.wheel.filename: i.source for w, i in zip(got.wheels, items)}
    tools = {
        w.wheel.filename: i.source for w, i in zip(got.wheels[len(resolution.packages) :], resolution.tools)
    }
    urls = {w.wheel.filename: i.url for w, i in zip(got.wheels, items) if i.url}
    return got, {"all": sources, "tools": tools, "urls": urls}


def _tool(recipe: Recipe, tools: tuple[Wheel, ...], files: dict[str, Path]) -> Tool:
    wheel = next(w for w in tools if w.name.lower() == recipe.install_tool)
    return Tool(name=recipe.install_tool, version=wheel.version, wheel=files[wheel.digest])


__all__ = ["BuildOptions", "BuildResult", "Fact", "Wheel", "build_recipe", "default_cache"]
