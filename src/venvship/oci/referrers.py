"""OCI 1.1 referrers: the manifests whose ``subject`` is a given digest, and the ``sha256-<hex>``
tag that lists them where no referrers API answers (a layout directory, distribution 2.8).

The referrers list is an image index; each entry carries its manifest's ``artifactType`` and
annotations (distribution spec, "Pushing Manifests with Subject"). Stdlib only: targets read it.
"""

from __future__ import annotations

import dataclasses
import re

from ..artifact.documents import INDEX_TYPE, Descriptor, Index, canonical_json, sha256_digest
from ..artifact.jsondoc import load_object
from ..errors import ArtifactError

MAX_REFERRERS = 256  # a list longer than this is not one venvship made: refuse to walk it
_TAG = re.compile(r"sha256-[0-9a-f]{64}")


def referrers_tag(digest: str) -> str:
    """Return the referrers tag of ``digest``: ``sha256:ab…`` → ``sha256-ab…``.

    Example: ``referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64``
    """
    algorithm, sep, encoded = digest.partition(":")
    if not sep or algorithm != "sha256":
        raise ArtifactError(f"unsupported digest {digest!r}")
    return f"{algorithm}-{encoded}"


def is_referrers_tag(tag: str) -> bool:
    """Return True if ``tag`` is a referrers list's tag (``sha256-<hex>``), not a version."""
    return bool(_TAG.fullmatch(tag))


def referrer_entry(raw: bytes, *, media_type: str) -> Descriptor:
    """Return the referrers-list entry of the referrer manifest ``raw``: its artifactType (else
    its config's media type) and all its annotations, as the distribution spec says."""
    data = load_object(raw, "referrer manifest")
    config = data.get("config")
    artifact_type = data.get("artifactType") or (
        config.get("mediaType") if isinstance(config, dict) else None
    )
    annotations = data.get("annotations") or {}
    return Descriptor(
        media_type=media_type,
        digest=sha256_digest(raw),
        size=len(raw),
        annotations=annotations if isinstance(annotations, dict) else {},
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
    )


def parse_list(raw: bytes, *, where: str) -> tuple[Descriptor, ...]:
    """Return the entries of a referrers list (an image index); raise ArtifactError otherwise."""
    entries = Index.from_bytes(raw, where=where).manifests
    if len(entries) > MAX_REFERRERS:
        raise ArtifactError(f"{where}: {len(entries)} referrers, more than {MAX_REFERRERS}")
    return entries


def with_entry(current: bytes | None, entry: Descriptor, *, where: str) -> bytes | None:
    """Return the referrers list ``current`` (None: empty) with ``entry`` appended, or None if it
    lists that digest already (duplicates are not made)."""
    entries = parse_list(current, where=where) if current is not None else ()
    if any(e.digest == entry.digest for e in entries):
        return None
    return list_bytes((*entries, entry))


def list_bytes(entries: tuple[Descriptor, ...]) -> bytes:
    """Return the referrers list of ``entries``: a plain image index (no venvship artifactType)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [dataclasses.replace(e, platform=None).to_json() for e in entries],
    }
    return canonical_json(doc)
