"""Package a locked wheelhouse as one per-platform OCI manifest, and merge platforms into an index."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..artifact.documents import (
    ANN_DISTRO,
    ANN_PYTHON,
    ARTIFACT_TYPE,
    CONFIG_TYPE,
    CREATED,
    INDEX_TYPE,
    MANIFEST_TYPE,
    REF_NAME,
    TITLE,
    VERSION,
    WHEEL_TYPE,
    Descriptor,
    Index,
    Manifest,
    VenvConfig,
    canonical_json,
    platform_descriptor,
    sha256_digest,
    tag_for_version,
)
from ..artifact.layerformat import LAYER_TYPE
from ..errors import ArtifactError
from ..oci.layout import Layout
from ..oci.retag import Retag, TagMoveRefused, moved


@dataclass(frozen=True)
class Packaged:
    """The result of packaging one platform: manifest bytes and what was newly written."""

    manifest: bytes
    digest: str
    descriptor: Descriptor
    platform_tag: str
    blobs_written: int
    retagged: tuple[Retag, ...] = ()  # existing tags this write moved to other content


def created_timestamp() -> str:
    """Return the ``created`` annotation: SOURCE_DATE_EPOCH when set, so builds are reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def build_manifest(
    config: VenvConfig, *, annotations: Mapping[str, str] | None = None
) -> tuple[bytes, bytes]:
    """Return (config bytes, manifest bytes) for ``config``: one raw-blob layer per wheel, then one
    ready-to-run layer per distribution."""
    config_raw = canonical_json(config.to_json())
    seen: set[str] = set()
    layers = []
    for wheel in sorted((*config.lock, *config.tools), key=lambda w: w.filename):
        if wheel.digest in seen:
            continue
        seen.add(wheel.digest)
        layers.append(
            Descriptor(
                media_type=WHEEL_TYPE,
                digest=wheel.digest,
                size=wheel.size,
                annotations={TITLE: wheel.filename},
            )
        )
    for info in config.layers.distributions if config.layers else ():
        layers.append(
            Descriptor(
                media_type=LAYER_TYPE, digest=info.digest, size=info.size, annotations={TITLE: info.title}
            )
        )
    ann = {CREATED: created_timestamp(), VERSION: config.version}
    ann.update(annotations or {})
    manifest = Manifest(
        config=Descriptor(media_type=CONFIG_TYPE, digest=sha256_digest(config_raw), size=len(config_raw)),
        layers=tuple(layers),
        annotations=ann,
    )
    return config_raw, canonical_json(manifest.to_json())


def write_to_layout(
    layout: Layout,
    config: VenvConfig,
    wheel_files: Mapping[str, Path],
    *,
    annotations: Mapping[str, str] | None = None,
    immutable_tags: bool = False,
) -> Packaged:
    """Write the wheels, config and manifest of ``config`` into ``layout``, then tag it.

    ``wheel_files`` maps each wheel's and layer's digest to a local file. Blobs first, refs last: the
    per-platform ref ``<name>:<version>-<platform key>`` and the index ref ``<name>:<version>``
    (merged with the platforms already present). Tags this moves to other content are returned;
    with ``immutable_tags`` they are refused (TagMoveRefused) before any ref is written.
    """
    written = 0
    blobs = [(w.digest, w.size, w.filename) for w in (*config.lock, *config.tools)]
    blobs += [(d.digest, d.size, d.title) for d in (config.layers.distributions if config.layers else ())]
    for digest, size, title in blobs:
        path = wheel_files.get(digest)
        if layout.has_blob(digest, size):
            continue
        if path is None:
            raise ArtifactError(f"no file for {title} ({digest})")
        written += layout.put_file(path, digest=digest, size=size)
    config_raw, manifest_raw = build_manifest(config, annotations=annotations)
    written += layout.put_bytes(config_raw)[1]
    digest, new = layout.put_bytes(manifest_raw)
    written += new
    desc = platform_descriptor(config, manifest_raw)
    tag = tag_for_version(config.version)
    platform_tag = f"{tag}-{config.platform_key}"
    platform_ref, index_ref = f"{config.name}:{platform_tag}", f"{config.name}:{tag}"
    refs = layout.refs()
    index_raw = _index_raw({**refs, platform_ref: desc}, layout.root, name=config.name, tag=tag)
    moves = [
        Retag(ref=f"oci:{layout.root}:{ref}", old=refs[ref].digest, new=sha256_digest(raw))
        for ref, raw, index in ((platform_ref, manifest_raw, False), (index_ref, index_raw, True))
        if raw is not None and ref in refs and moved(layout.read_blob(refs[ref].digest), raw, index=index)
    ]
    if moves and immutable_tags:
        raise TagMoveRefused(moves)
    layout.set_refs({platform_ref: desc})
    written += merge_index(layout, name=config.name, tag=tag)
    return Packaged(
        manifest=manifest_raw,
        digest=digest,
        descriptor=desc,
        platform_tag=platform_tag,
        blobs_written=written,
        retagged=tuple(moves),
    )


def merge_index(layout: Layout, *, name: str, tag: str) -> int:
    """Write the index ``<name>:<tag>`` over every ``<name>:<tag>-<platform>`` ref; return blobs written."""
    raw = _index_raw(layout.refs(), layout.root, name=name, tag=tag)
    if raw is None:
        return 0
    digest, new = layout.put_bytes(raw)
    layout.set_refs(
        {
            f"{name}:{tag}": Descriptor(
                media_type=INDEX_TYPE, digest=digest, size=len(raw), artifact_type=ARTIFACT_TYPE
            )
        }
    )
    return int(new)


def _index_raw(refs: Mapping[str, Descriptor], root: Path, *, name: str, tag: str) -> bytes | None:
    """Return the index over the ``<name>:<tag>-<platform>`` manifests of ``refs`` (None: there are none)."""
    prefix = f"{name}:{tag}-"
    entries = []
    seen: dict[tuple[str, str, str], str] = {}
    for ref, desc in sorted(refs.items()):
        if not ref.startswith(prefix) or desc.media_type != MANIFEST_TYPE:
            continue
        key = (
            (desc.platform or {}).get("architecture", ""),
            desc.annotations.get(ANN_PYTHON, ""),
            desc.annotations.get(ANN_DISTRO, ""),
        )
        if key in seen and seen[key] != desc.digest:
            raise ArtifactError(f"{root}: two manifests for one platform {key}: {seen[key]}, {desc.digest}")
        seen[key] = desc.digest
        ann = {k: v for k, v in desc.annotations.items() if k != REF_NAME}
        entries.append(dataclasses.replace(desc, annotations=ann))
    if not entries:
        return None
    return canonical_json(Index(manifests=tuple(entries)).to_json())
