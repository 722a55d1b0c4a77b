"""Reuse the wheels of a previous artifact (``--reuse-from REF``) instead of building them again."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..artifact import ANN_DISTRO, ANN_PYTHON, INDEX_TYPE, Index, Manifest, VenvConfig, Wheel, platform_key
from ..errors import ArtifactError
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.source import Access, Source, open_source
from .wheels import Reuse


def _platform_manifest(source: Source, reference: str, pkey: str) -> Manifest | None:
    desc, raw = source.get_manifest(reference)
    if desc.media_type != INDEX_TYPE:
        return Manifest.from_bytes(raw)
    for entry in Index.from_bytes(raw).manifests:
        key = platform_key(
            distro=entry.annotations.get(ANN_DISTRO, ""),
            architecture=(entry.platform or {}).get("architecture", ""),
            abi=entry.annotations.get(ANN_PYTHON, ""),
        )
        if key == pkey:
            return Manifest.from_bytes(source.get_manifest(entry.digest)[1])
    return None


def previous_wheels(ref: Ref, *, platform_key: str, scratch: Path, access: Access | None = None) -> Reuse:
    """Return the previous artifact's wheels for this platform, keyed by the source they came from.

    ``ref`` names the artifact with a tag or digest (``oci:DIR:NAME:TAG``, ``HOST/REPO:TAG``);
    ``scratch`` is a folder for the blobs read from it; ``access`` says how to reach a registry.
    """
    target = ref.tag or ref.digest
    if target is None:
        raise ArtifactError(f"{ref}: --reuse-from needs a tag or digest")
    source = open_source(ref, access)
    manifest = _platform_manifest(source, target, platform_key)
    if manifest is None:
        return {}
    blobs = Layout.create(scratch)
    source.fetch_blob(manifest.config.digest, manifest.config.size, blobs)
    config = VenvConfig.from_bytes(blobs.read_blob(manifest.config.digest), where=f"{ref} config")

    def fetch(wheel: Wheel, dest: Path) -> None:
        source.fetch_blob(wheel.digest, wheel.size, blobs)  # verified while streaming
        shutil.copyfile(blobs.blob_path(wheel.digest), dest)

    return {
        config.provenance[w.filename]: (w, fetch)
        for w in (*config.lock, *config.tools)
        if w.filename in config.provenance
    }
