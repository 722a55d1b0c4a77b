"""Read and write referrers (signatures, SBOMs, provenance) where an artifact lives: a layout
directory or a registry repository, behind one small interface.

Writing a referrer puts its blobs first, then the manifest by digest, then, where the registry
keeps no referrers list itself (no ``OCI-Subject`` answer; always in a layout), appends it to the
``sha256-<hex>`` tag's list. Stdlib only; the build side uses it (``venv-pull`` only reads).
"""

from __future__ import annotations

import io
from typing import Iterable, Protocol

from ..artifact.documents import INDEX_TYPE, MANIFEST_TYPE, Descriptor, sha256_digest
from ..artifact.sigformat import parse_referrer
from ..errors import ArtifactError
from .layout import Layout
from .reference import HttpLayoutRef, LayoutRef, Ref
from .referrers import referrer_entry, referrers_tag, with_entry
from .registry import RegistryClient
from .source import Access, LayoutSource, registry_client

# The referrers one copy reads, over all levels: venvship attaches a few per manifest (signatures,
# an SBOM, provenance and their signatures).
MAX_COPIED_REFERRERS = 1024


class Store(Protocol):
    """One repository (a layout's NAME, a registry's REPO) as the referrer tools read and write it."""

    where: str  # how messages name it
    identity: str  # how a signature payload names it (cosign's docker-reference)

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        """Return the descriptor and verified bytes of the manifest or index at a tag or digest."""
        ...

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        """Return the referrers list of ``digest`` (() if none)."""
        ...

    def blob(self, desc: Descriptor) -> bytes:
        """Return a small blob's verified bytes (a payload, an SBOM)."""
        ...

    def attach(self, manifest_raw: bytes, blobs: Iterable[bytes]) -> bool:
        """Store the referrer manifest ``manifest_raw`` with its ``blobs``; False if it was listed."""
        ...


class LayoutStore:
    """A :class:`Store` over the name ``name`` of a layout directory."""

    def __init__(self, layout: Layout, name: str) -> None:
        self.layout = layout
        self.name = name
        self.where = f"oci:{layout.root}:{name}"
        self.identity = name
        self._source = LayoutSource(LayoutRef(path=layout.root, name=name))

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        return self._source.get_manifest(reference)

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        return self._source.referrers(digest)

    def blob(self, desc: Descriptor) -> bytes:
        return self.layout.read_blob(desc.digest)

    def attach(self, manifest_raw: bytes, blobs: Iterable[bytes]) -> bool:
        subject, entry = _subject_and_entry(manifest_raw, self.where)
        for blob in blobs:
            self.layout.put_bytes(blob)
        self.layout.put_bytes(manifest_raw)
        tag = f"{self.name}:{referrers_tag(subject)}"
        return self.layout.update_ref(tag, lambda raw: with_entry(raw, entry, where=f"{self.where}:{tag}"))


class RegistryStore:
    """A :class:`Store` over one registry repository."""

    def __init__(self, client: RegistryClient, repo: str) -> None:
        self.client = client
        self.repo = repo
        self.where = f"{client.registry}/{repo}"
        self.identity = self.where

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        media_type, raw, digest = self.client.get_manifest(self.repo, reference)
        return Descriptor(media_type=media_type, digest=digest, size=len(raw)), raw

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        return self.client.referrers(self.repo, digest)

    def blob(self, desc: Descriptor) -> bytes:
        return self.client.get_blob_bytes(self.repo, desc.digest)

    def fetch_blob(self, digest: str, size: int, dest: Layout) -> bool:
        return self.client.fetch_blob(self.repo, digest, size, dest)

    def attach(self, manifest_raw: bytes, blobs: Iterable[bytes]) -> bool:
        subject, entry = _subject_and_entry(manifest_raw, self.where)
        if any(e.digest == entry.digest for e in self.referrers(subject)):
            return False
        for blob in blobs:
            self.client.push_blob(self.repo, io.BytesIO(blob), sha256_digest(blob), len(blob))
        if self.client.put_referrer(self.repo, manifest_raw):
            return True  # the registry lists it itself (referrers API)
        tag = referrers_tag(subject)
        new = with_entry(
            self.client.get_optional_manifest(self.repo, tag), entry, where=f"{self.where}:{tag}"
        )
        if new is not None:
            self.client.put_manifest(self.repo, tag, new, INDEX_TYPE)
        return True


def open_store(ref: Ref, access: Access | None = None) -> Store:
    """Return the :class:`Store` of ``ref``'s repository (a layout needs the NAME).

    Example: ``open_store(parse_ref("oci:build/oci:demo:1.0")).referrers("sha256:…")``
    """
    if isinstance(ref, LayoutRef):
        if not ref.name:
            raise ArtifactError(f"{ref}: name the artifact, e.g. oci:DIR:NAME:TAG")
        return LayoutStore(Layout.open(ref.path), ref.name)
    if isinstance(ref, HttpLayoutRef):
        from .httplayout import HttpLayoutSource

        return HttpLayoutSource(ref, access=access or Access())  # read-only: attach refuses
    if not ref.repository:
        raise ArtifactError(f"{ref}: name the repository, e.g. HOST/REPO:TAG")
    return RegistryStore(registry_client(ref.registry, access or Access()), ref.repository)


def referrer_blobs(store: Store, raw: bytes, *, where: str) -> list[bytes]:
    """Return the bytes of every blob the referrer manifest ``raw`` names (config and layers)."""
    referrer = parse_referrer(raw, where=where)
    return [store.blob(d) for d in (referrer.config, *referrer.layers)]


def copy_referrers(
    src: Store, dest: Store, digest: str, *, depth: int = 0, seen: set[str] | None = None
) -> int:
    """Copy every referrer of ``digest`` (and theirs) from ``src`` to ``dest``; return how many were new.

    Each referrer is read once (``seen``), at most :data:`MAX_COPIED_REFERRERS` of them: a source
    whose every referrer lists the same 256 again would otherwise be asked 256³ times.

    Example: ``copy_referrers(LayoutStore(layout, "demo"), RegistryStore(ref, access), "sha256:…")``
    """
    copied = 0
    seen = set() if seen is None else seen
    if depth > 2:
        return copied
    for entry in src.referrers(digest):
        if entry.digest in seen:
            continue
        seen.add(entry.digest)
        if len(seen) > MAX_COPIED_REFERRERS:
            raise ArtifactError(
                f"{src.where}: more than {MAX_COPIED_REFERRERS} referrers under {digest}: not what "
                "venvship attaches"
            )
        _, raw = src.get_manifest(entry.digest)
        where = f"{src.where}@{entry.digest}"
        blobs = referrer_blobs(src, raw, where=where)
        copied += dest.attach(raw, blobs)
        # Referrers of referrers (a signature of an SBOM, say) travel too, a few levels deep.
        copied += copy_referrers(src, dest, entry.digest, depth=depth + 1, seen=seen)
    return copied


def _subject_and_entry(manifest_raw: bytes, where: str) -> tuple[str, Descriptor]:
    referrer = parse_referrer(manifest_raw, where=f"{where} referrer")
    return referrer.subject, referrer_entry(manifest_raw, media_type=MANIFEST_TYPE)
