"""The artifact contract (DESIGN §4): media types, annotation keys, and the OCI documents that carry
a venv (descriptors, per-platform manifests, the image index) as frozen dataclasses.

The config blob lives in :mod:`venvship.artifact.venvconfig` and canonical JSON in :mod:`venvship.artifact.jsondoc`;
their names are importable from here too, so that ``artifact`` is the one place to import from.
Stdlib only: the target side reads these on bare hosts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ArtifactError
from .jsondoc import canonical_json, check_no_nul, load_object, sha256_digest, str_map, typed_field
from .venvconfig import CONFIG_SCHEMA, Fact, PlatformInfo, PythonInfo, VenvConfig, Wheel, platform_key

__all__ = [
    "ANN_DISTRO",
    "ANN_DISTRO_BOUND",
    "ANN_GLIBC",
    "ANN_PYTHON",
    "ARTIFACT_TYPE",
    "CONFIG_SCHEMA",
    "CONFIG_TYPE",
    "CREATED",
    "INDEX_TYPE",
    "MANIFEST_TYPE",
    "REF_NAME",
    "TITLE",
    "VERSION",
    "WHEEL_TYPE",
    "Descriptor",
    "Fact",
    "Index",
    "Manifest",
    "PlatformInfo",
    "PythonInfo",
    "VenvConfig",
    "Wheel",
    "canonical_json",
    "media_type_of",
    "platform_descriptor",
    "platform_key",
    "sha256_digest",
    "tag_for_version",
]

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
ARTIFACT_TYPE = "application/vnd.venvship.venv.v1"
CONFIG_TYPE = "application/vnd.venvship.venv.config.v1+json"
WHEEL_TYPE = "application/vnd.venvship.wheel.v1+zip"

TITLE = "org.opencontainers.image.title"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"
VERSION = "org.opencontainers.image.version"
ANN_PYTHON = "io.venvship.python"
ANN_DISTRO = "io.venvship.distro"
ANN_GLIBC = "io.venvship.glibc"
ANN_DISTRO_BOUND = "io.venvship.distro-bound"


_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def tag_for_version(version: str) -> str:
    """Return the OCI tag for a PEP 440 version: tags allow no ``+``, so it becomes ``_``."""
    return version.replace("+", "_")


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] | None = None
    artifact_type: str | None = None

    @property
    def title(self) -> str | None:
        return self.annotations.get(TITLE)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, data: Any, *, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: not an object")
        check_no_nul(data, where)
        digest = typed_field(data, "digest", str, where)
        if not _DIGEST_RE.fullmatch(digest):
            raise ArtifactError(f"{where}: unsupported digest {digest!r:.80}")
        size = typed_field(data, "size", int, where)
        if size < 0:
            raise ArtifactError(f"{where}: negative size")
        artifact_type = data.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ArtifactError(f"{where}: 'artifactType' is not a string")
        plat = data.get("platform")
        return cls(
            media_type=typed_field(data, "mediaType", str, where),
            digest=digest,
            size=size,
            annotations=_annotations(data, where),
            platform=None if plat is None else str_map(plat, f"{where}.platform"),
            artifact_type=artifact_type,
        )


def _annotations(data: Mapping[str, Any], where: str) -> dict[str, str]:
    """Return the ``annotations`` of an OCI document or descriptor: absent (or null) or strings."""
    value = data.get("annotations")
    return {} if value is None else str_map(value, f"{where}.annotations")


@dataclass(frozen=True)
class Manifest:
    """A per-platform image manifest: the config descriptor and one layer per wheel."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return _document(
            MANIFEST_TYPE,
            {"config": self.config.to_json(), "layers": [layer.to_json() for layer in self.layers]},
            self.annotations,
        )

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "manifest") -> Manifest:
        data = load_object(raw, where)
        if data.get("mediaType", MANIFEST_TYPE) != MANIFEST_TYPE or "layers" not in data:
            raise ArtifactError(f"{where}: not an OCI image manifest")
        config = Descriptor.from_json(data.get("config"), where=f"{where}.config")
        if config.media_type != CONFIG_TYPE:
            raise ArtifactError(f"{where}: not a venvship artifact (config {config.media_type})")
        layers = tuple(
            Descriptor.from_json(d, where=f"{where}.layers[{i}]")
            for i, d in enumerate(typed_field(data, "layers", list, where))
        )
        for i, layer in enumerate(layers):
            title = layer.title or ""
            if not title or "/" in title or "\\" in title or title in (".", ".."):
                raise ArtifactError(f"{where}.layers[{i}]: unsafe or missing title {title!r}")
        return cls(config=config, layers=layers, annotations=_annotations(data, where))


@dataclass(frozen=True)
class Index:
    """An image index: one entry per platform manifest."""

    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _document(INDEX_TYPE, {"manifests": [m.to_json() for m in self.manifests]}, self.annotations)

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "index") -> Index:
        data = load_object(raw, where)
        if data.get("mediaType", INDEX_TYPE) != INDEX_TYPE or "manifests" not in data:
            raise ArtifactError(f"{where}: not an OCI image index")
        return cls(
            manifests=tuple(
                Descriptor.from_json(d, where=f"{where}.manifests[{i}]")
                for i, d in enumerate(typed_field(data, "manifests", list, where))
            ),
            annotations=_annotations(data, where),
        )


def platform_descriptor(config: VenvConfig, manifest_raw: bytes) -> Descriptor:
    """Return the index entry for ``config``'s per-platform manifest ``manifest_raw``.

    Example: ``Index(manifests=(platform_descriptor(config, raw),))``
    """
    plat = {"os": config.platform.os, "architecture": config.platform.architecture}
    if config.platform.variant:
        plat["variant"] = config.platform.variant
    ann = {ANN_PYTHON: config.python.abi, ANN_DISTRO: config.platform.distro}
    if config.platform.glibc:
        ann[ANN_GLIBC] = config.platform.glibc
    if config.platform.distro_bound:
        ann[ANN_DISTRO_BOUND] = "true"
    return Descriptor(
        media_type=MANIFEST_TYPE,
        digest=sha256_digest(manifest_raw),
        size=len(manifest_raw),
        annotations=ann,
        platform=plat,
        # No per-entry artifactType: skopeo 1.9 (Debian 12) drops it when copying an index and so
        # changes the index digest; the index and each manifest carry it themselves.
    )


def media_type_of(raw: bytes) -> str:
    """Return the ``mediaType`` of a manifest or index document (guessing from its keys if absent)."""
    data = load_object(raw, "document")
    media = data.get("mediaType")
    if isinstance(media, str):
        return media
    return INDEX_TYPE if "manifests" in data else MANIFEST_TYPE


def _document(media_type: str, body: dict[str, Any], annotations: Mapping[str, str]) -> dict[str, Any]:
    """Return a venvship manifest or index document: the common header, ``body``, annotations if any."""
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "artifactType": ARTIFACT_TYPE, **body}
    if annotations:
        out["annotations"] = dict(annotations)
    return out
