"""Attach what a build knows about a per-platform manifest to it as referrers: the SBOM and the
provenance statement (in a DSSE envelope without signatures; ``sign`` adds them)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..artifact.documents import MANIFEST_TYPE, TITLE, Descriptor, Manifest, VenvConfig, sha256_digest
from ..artifact.sigformat import (
    DSSE_TYPE,
    EMPTY_JSON,
    INTOTO_TYPE,
    PREDICATE_ANNOTATION,
    SBOM_TYPE,
    dsse_envelope,
    referrer_manifest,
)
from ..oci.attach import Store
from ..recipe.recipefile import Recipe
from .inputs import Inputs
from .provenance import SLSA_PROVENANCE, make_statement
from .sbom import make_sbom

# The statements this process made (by sha256): only these get a provenance signature, so a
# statement someone else attached to a manifest is never signed as if this build had made it.
_MADE_HERE: set[str] = set()


def made_here(statement: bytes) -> bool:
    """Whether this process made ``statement`` (in ``attach_evidence``)."""
    return sha256_digest(statement) in _MADE_HERE


def attach_evidence(
    store: Store,
    manifest_raw: bytes,
    *,
    recipe: Recipe,
    inputs: Inputs,
    config: VenvConfig,
    ref_name: str,
    wheel_files: Mapping[str, Path],
) -> None:
    """Attach the SBOM and the provenance of ``manifest_raw`` (stored in ``store``) as its referrers.

    Example: ``attach_evidence(LayoutStore(layout, "demo"), raw, recipe=r, inputs=i, config=c, ref_name=n, wheel_files=f)``
    """
    subject = Descriptor(media_type=MANIFEST_TYPE, digest=sha256_digest(manifest_raw), size=len(manifest_raw))
    manifest = Manifest.from_bytes(manifest_raw)
    sbom = make_sbom(config, manifest, digest=subject.digest, wheel_files=wheel_files)
    attach_blob(store, subject, sbom, artifact_type=SBOM_TYPE, media_type=SBOM_TYPE, title="sbom.cdx.json")
    statement = make_statement(recipe, inputs, config, manifest, digest=subject.digest, subject_name=ref_name)
    _MADE_HERE.add(sha256_digest(statement))
    attach_provenance(store, subject, dsse_envelope(statement, []))


def attach_provenance(store: Store, subject: Descriptor, envelope: bytes) -> bool:
    """Attach the DSSE ``envelope`` of a provenance statement about ``subject``; False if it was there."""
    return attach_blob(
        store,
        subject,
        envelope,
        artifact_type=INTOTO_TYPE,
        media_type=DSSE_TYPE,
        annotations={PREDICATE_ANNOTATION: SLSA_PROVENANCE},
    )


def attach_blob(
    store: Store,
    subject: Descriptor,
    blob: bytes,
    *,
    artifact_type: str,
    media_type: str,
    title: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> bool:
    """Attach ``blob`` to ``subject`` as the one layer of a referrer of ``artifact_type``."""
    layer_ann = {**(annotations or {}), **({TITLE: title} if title else {})}
    layer = Descriptor(
        media_type=media_type, digest=sha256_digest(blob), size=len(blob), annotations=layer_ann
    )
    raw = referrer_manifest(
        subject=subject, artifact_type=artifact_type, layers=[layer], annotations=annotations
    )
    return store.attach(raw, [EMPTY_JSON, blob])
