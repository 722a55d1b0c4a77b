"""Build several recipes into one output, a layout directory or a registry: the one orchestration
``venvship build`` and the nox plugin share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .._log import logger
from .._process import withhold
from ..artifact.documents import tag_for_version
from ..errors import VenvshipError
from ..oci.attach import LayoutStore
from ..oci.layout import Layout
from ..oci.publish import PublishResult, merge_registry_index, publish_layout
from ..oci.reference import HttpLayoutRef, LayoutRef, Ref
from ..oci.retag import Retag
from ..oci.source import Access, registry_client
from ..recipe.recipefile import Recipe, find_recipes, load_recipes
from .cachecare import using_cache
from .cachedir import build_cache
from .recipebuild import BuildOptions, BuildResult, build_recipe, default_cache

if TYPE_CHECKING:
    from .signer import SigningKey


@dataclass(frozen=True)
class BatchResult:
    """Every recipe's result, and what publishing to a registry output did (None for a layout)."""

    output: Ref
    results: tuple[BuildResult, ...]
    published: PublishResult | None = None
    indexes: tuple[tuple[str, str], ...] = ()  # registry output: (index tag, digest) per recipe

    @property
    def retagged(self) -> tuple[Retag, ...]:
        """Every existing tag of the output that this run moved to other content."""
        if self.published is not None:
            return self.published.retagged
        return tuple(r for result in self.results for r in result.retagged)

    def to_json(self) -> dict[str, object]:
        entries = [r.to_json() for r in self.results]
        for entry in entries:
            if self.published is not None:
                entry["published"] = f"{str(self.output).rstrip('/')}/{entry['ref']}"
                entry.pop("retagged")  # the staging layout's; the registry's are below
        out: dict[str, object] = {"recipes": entries, "retagged": [r.to_json() for r in self.retagged]}
        if self.published is not None:
            out["indexes"] = {tag: digest for tag, digest in self.indexes}
        return out


def build_recipes(
    paths: Sequence[Path],
    *,
    output: Ref,
    options: BuildOptions | None = None,
    access: Access | None = None,
    sign_key: SigningKey | None = None,
) -> BatchResult:
    """Build the recipes at ``paths`` (files, or folders of ``*.toml``) into ``output``.

    A layout output (``oci:DIR``) is written directly. A registry output (``HOST/NAMESPACE``) is
    built into a staging layout in the build cache first, then published: blobs go up before any tag,
    and each recipe's index tag ``VERSION`` is merged over the registry's ``VERSION-*`` tags last.
    With ``sign_key``, each recipe's index and manifests are signed in the layout before that, and
    their signatures travel with them.
    A moved tag of the output is logged as a warning (``options.immutable_tags``: refused).

    Example: ``build_recipes([Path("recipes")], output=parse_ref("oci:build/oci"))``
    """
    opts = options or BuildOptions()
    if access is not None and access.credentials is not None:
        withhold(access.credentials.password)  # a caller's environment may hold it (nox plugin)
    files = find_recipes(list(paths))
    if not files:
        raise VenvshipError(f"no recipes found in {' '.join(map(str, paths))}")
    recipes = load_recipes(files)
    # The whole run: a registry build's staging layout is read again when it is published.
    with using_cache(build_cache(opts.cache or default_cache())):
        return _build_recipes(recipes, output=output, opts=opts, access=access, sign_key=sign_key)


def _build_recipes(
    recipes: list[Recipe],
    *,
    output: Ref,
    opts: BuildOptions,
    access: Access | None,
    sign_key: SigningKey | None,
) -> BatchResult:
    if isinstance(output, HttpLayoutRef):
        raise VenvshipError(
            f"{output}: a layout on a web server is read, not written: build into the server's web root "
            "with --output oci:DIR"
        )
    if isinstance(output, LayoutRef):
        if output.name:
            raise VenvshipError(f"{output}: the output is oci:DIR or a registry namespace, not one artifact")
        layout = Layout.create(output.path)
    else:
        layout = Layout.create(build_cache(opts.cache or default_cache()) / "staging")
        if not opts.check:
            # Reach the registry (TLS, login) before minutes of building, not after.
            first = recipes[0]
            client = registry_client(output.registry, access or Access())
            client.check_tag(output.with_target(name=first.name).repository, tag_for_version(first.version))
    # A registry's tags are what count: the staging layout is a cache whose tags move freely.
    to_layout = isinstance(output, LayoutRef) or opts.check
    build_opts = opts if to_layout else dataclasses.replace(opts, immutable_tags=False)
    results: list[BuildResult] = []
    for recipe in recipes:
        built: dict[str, str] = {}  # platform tag → the interpreter it was built with
        for python in dict.fromkeys((*recipe.pythons, *opts.pythons)):
            result = build_recipe(recipe, output=layout, options=build_opts, python=python)
            if result.ref in built:
                raise VenvshipError(
                    f"{recipe.path}: python {built[result.ref]} and {python} are the same platform here"
                    f" ({result.ref.split(':', 1)[1]}): keep one of them"
                )
            built[result.ref] = python
            results.append(result)
    made = frozenset((r.name, r.digest) for r in results)
    if sign_key is not None and not opts.check:
        from .signer import sign_artifact
        from .vouch import require_layout_made

        if isinstance(output, LayoutRef):
            for recipe in recipes:
                tag = tag_for_version(recipe.version)
                # The index also names platforms this build did not make: signed only if the key did.
                require_layout_made(layout, recipe.name, tag, sign_key, made)
                sign_artifact(LayoutStore(layout, recipe.name), tag, sign_key)
        else:
            # Only this build's manifests go up from the staging layout, whose other tags are
            # leftovers; the registry's index is checked and signed once merged (index_signer).
            for result in results:
                name, _, tag = result.ref.partition(":")
                sign_artifact(LayoutStore(layout, name), tag, sign_key)
    if isinstance(output, LayoutRef) or opts.check:
        for move in (r for result in results for r in result.retagged):
            logger.warning("%s", move)
        return BatchResult(output=output, results=tuple(results))
    published = publish_layout(
        layout, [r.ref for r in results], output, client, immutable_tags=opts.immutable_tags
    )
    indexes = []
    for recipe in recipes:
        ref = output.with_target(name=recipe.name)
        sign = None
        if sign_key is not None:
            from .vouch import index_signer

            # The other platforms' tags come from the registry: signed only if the key signed them.
            sign = index_signer(ref, client, sign_key, made=made)
        digest = merge_registry_index(client, ref.repository, recipe.version, before_tag=sign)
        indexes.append((f"{client.registry}/{ref.repository}:{tag_for_version(recipe.version)}", digest))
    return BatchResult(output=output, results=tuple(results), published=published, indexes=tuple(indexes))


__all__ = ["BatchResult", "build_recipes"]
