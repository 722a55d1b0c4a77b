"""Reuse the wheels of a previous artifact (``--reuse-from REF``) instead of building them again.

The previous artifact is untrusted data: its index wheels are taken only when their sha256 is the
index's (wheels.py checks), and its wheels built from sources only when its signature verifies
under ``--reuse-policy``, the same trust policy format and check the targets use.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .._log import logger
from ..artifact.documents import (
    ANN_DISTRO,
    ANN_PYTHON,
    INDEX_TYPE,
    Index,
    Manifest,
    VenvConfig,
    Wheel,
    platform_key,
)
from ..errors import ArtifactError, InstallError
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.source import Access, Source, open_source
from ..verify.policy import load_policy
from ..verify.select import BlobReader
from ..verify.signature import verify_signed
from .wheels import Reuse


def _platform_manifest(source: Source, reference: str, pkey: str) -> tuple[str, Manifest] | None:
    desc, raw = source.get_manifest(reference)
    if desc.media_type != INDEX_TYPE:
        return desc.digest, Manifest.from_bytes(raw)
    for entry in Index.from_bytes(raw).manifests:
        key = platform_key(
            distro=entry.annotations.get(ANN_DISTRO, ""),
            architecture=(entry.platform or {}).get("architecture", ""),
            abi=entry.annotations.get(ANN_PYTHON, ""),
        )
        if key == pkey:
            return entry.digest, Manifest.from_bytes(source.get_manifest(entry.digest)[1])
    return None


def _signed(source: Source, ref: Ref, digest: str, blobs: Layout, policy: Path | None) -> bool:
    """Whether the platform manifest ``digest`` carries a signature the policy at ``policy`` trusts."""
    if policy is None:
        return False
    rule = load_policy(policy).rule_for(ref)
    if not rule.require_signature:  # a rule that asks for nothing vouches for nothing
        return False
    reader = BlobReader(source, blobs)
    try:
        verify_signed(rule, reader, (digest,), where=str(ref))
    except InstallError as exc:
        logger.warning("%s; its wheels built from sources are built again", exc)
        return False
    finally:
        reader.close()
    return True


def previous_wheels(
    ref: Ref,
    *,
    platform_key: str,
    scratch: Path,
    access: Access | None = None,
    policy: Path | None = None,
) -> Reuse:
    """Return the previous artifact's wheels for this platform, keyed by the source they came from.

    ``ref`` names the artifact with a tag or digest (``oci:DIR:NAME:TAG``, ``HOST/REPO:TAG``);
    ``scratch`` is a folder for the blobs read from it; ``access`` says how to reach a registry;
    ``policy`` is the trust policy its signature must satisfy for built wheels to be reused.
    """
    target = ref.tag or ref.digest
    if target is None:
        raise ArtifactError(f"{ref}: --reuse-from needs a tag or digest")
    source = open_source(ref, access)
    found = _platform_manifest(source, target, platform_key)
    if found is None:
        return Reuse(wheels={})
    digest, manifest = found
    blobs = Layout.create(scratch)
    source.fetch_blob(manifest.config.digest, manifest.config.size, blobs)
    config = VenvConfig.from_bytes(blobs.read_blob(manifest.config.digest), where=f"{ref} config")

    def fetch(wheel: Wheel, dest: Path) -> None:
        source.fetch_blob(wheel.digest, wheel.size, blobs)  # verified while streaming
        shutil.copyfile(blobs.blob_path(wheel.digest), dest)

    return Reuse(
        wheels={
            config.provenance[w.filename]: (w, fetch)
            for w in (*config.lock, *config.tools)
            if w.filename in config.provenance
        },
        signed=_signed(source, ref, digest, blobs, policy),
    )
