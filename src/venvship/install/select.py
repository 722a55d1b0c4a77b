"""Platform selection: pick the one manifest of a reference that fits this host (DESIGN §4)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..artifact import (
    ANN_DISTRO,
    ANN_DISTRO_BOUND,
    ANN_GLIBC,
    ANN_PYTHON,
    INDEX_TYPE,
    Descriptor,
    Index,
    Manifest,
    VenvConfig,
    media_type_of,
)
from ..errors import ArtifactError, BadReference, InstallError, VenvshipError
from ..hostinfo import Interpreter, distro_key, go_arch, probe_python, version_tuple
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.source import Source


@dataclass(frozen=True)
class Selected:
    """The manifest chosen for this host, its parsed config and the interpreter that runs it."""

    ref_digest: str
    digest: str
    manifest: Manifest
    manifest_raw: bytes
    config: VenvConfig
    config_raw: bytes


class BlobReader:
    """Reads manifests and configs: from the cache when it holds them (no request), else from the
    source into a scratch layout.

    Nothing is written into the cache here: ``pull`` stores what an install keeps, under the cache
    lock, so a run that fails before (a bad reference, a refused login, no fitting platform) or a
    ``--check`` run leaves the cache as it was, or absent.
    """

    def __init__(self, source: Source, cache: Layout) -> None:
        self.source = source
        self.cache = cache
        self._manifests: dict[str, bytes] = {}
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def read(self, desc: Descriptor) -> bytes:
        """Return the verified bytes of blob ``desc``, fetching it if the cache lacks it."""
        if self.cache.has_blob(desc.digest, desc.size):
            return self.cache.read_blob(desc.digest)
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="venv-pull-")
        scratch = Layout.create(Path(self._scratch.name))
        self.source.fetch_blob(desc.digest, desc.size, scratch)
        return scratch.read_blob(desc.digest)

    def manifest(self, digest: str) -> bytes:
        """Return the verified bytes of manifest ``digest``: from the cache if it holds it, else asked once."""
        if digest not in self._manifests:
            if self.cache.has_blob(digest):
                self._manifests[digest] = self.cache.read_blob(digest)
            else:
                self._manifests[digest] = self.source.get_manifest(digest)[1]
        return self._manifests[digest]

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()


def reference_of(ref: Ref) -> str:
    """Return the tag or digest to ask the source for."""
    if ref.digest:
        return ref.digest
    if ref.tag:
        return ref.tag
    raise BadReference(f"{ref}: name a tag or digest, e.g. {ref}:1.0")


def resolve_top(source: Source, ref: Ref) -> tuple[Descriptor, bytes]:
    """Return the descriptor and bytes of what ``ref`` names (an index or a manifest)."""
    desc, raw = source.get_manifest(reference_of(ref))
    return desc, raw


def any_config(reader: BlobReader, top_raw: bytes, *, where: str) -> VenvConfig:
    """Return the config of some platform of ``top_raw`` (all share the recipe's install path)."""
    if media_type_of(top_raw) == INDEX_TYPE:
        index = Index.from_bytes(top_raw, where=where)
        if not index.manifests:
            raise ArtifactError(f"{where}: the index lists no platforms")
        # Any platform will do: prefer one this host pulled before (its manifest is in the cache).
        cached = [e for e in index.manifests if reader.cache.has_blob(e.digest, e.size)]
        top_raw = reader.manifest((cached or list(index.manifests))[0].digest)
    return _config(reader, Manifest.from_bytes(top_raw, where=where), where)[0]


def _config(reader: BlobReader, manifest: Manifest, where: str) -> tuple[VenvConfig, bytes]:
    import json

    raw = reader.read(manifest.config)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ArtifactError(f"{where}: config is not valid JSON ({exc})") from exc
    return VenvConfig.from_json(data), raw


@dataclass(frozen=True)
class Host:
    """What this host offers: architecture, distro key and glibc; ABIs come from probing."""

    architecture: str
    distro: str
    glibc: str

    @classmethod
    def detect(cls) -> Host:
        import os

        try:
            libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
        except (ValueError, OSError):
            libc = ""
        glibc = libc.split(" ")[-1] if libc.startswith("glibc") else ""
        return cls(architecture=go_arch(), distro=distro_key(), glibc=glibc)


def _offer(desc: Descriptor) -> str:
    arch = (desc.platform or {}).get("architecture", "?")
    ann = desc.annotations
    text = f"{ann.get(ANN_DISTRO, '?')}-{arch}-{ann.get(ANN_PYTHON, '?')}"
    if ann.get(ANN_GLIBC):
        text += f" (glibc {ann[ANN_GLIBC]})"
    return text


def _platform_misfit(desc: Descriptor, host: Host) -> str | None:
    """Return why index entry ``desc`` cannot run on ``host`` (ABI aside), or None."""
    plat = desc.platform or {}
    if plat.get("os", "linux") != "linux":
        return f"os {plat.get('os')}"
    if plat.get("architecture") != host.architecture:
        return f"architecture {plat.get('architecture')}"
    ann = desc.annotations
    if ann.get(ANN_DISTRO_BOUND) == "true" and ann.get(ANN_DISTRO) != host.distro:
        return f"distro {ann.get(ANN_DISTRO)}"
    floor = ann.get(ANN_GLIBC, "")
    if floor and (not host.glibc or version_tuple(floor) > version_tuple(host.glibc)):
        return f"glibc {floor} > {host.glibc or 'none'}"
    return None


def select(
    reader: BlobReader,
    ref: Ref,
    *,
    host: Host,
    probe: Callable[[str], Interpreter] = probe_python,
) -> Selected:
    """Return the manifest of ``ref`` that fits ``host`` and the recipe's python on it.

    Raises InstallError listing what the index offers when nothing fits.
    """
    where = str(ref)
    top, top_raw = resolve_top(reader.source, ref)
    abis: dict[str, str] = {}

    def abi_of(executable: str) -> str:
        if executable not in abis:
            try:
                abis[executable] = probe(executable).info.abi
            except VenvshipError:
                abis[executable] = ""  # this python is missing here: no entry for it can fit
        return abis[executable]

    if media_type_of(top_raw) != INDEX_TYPE:
        manifest = Manifest.from_bytes(top_raw, where=where)
        config, config_raw = _config(reader, manifest, where)
        entry = Descriptor(
            media_type=top.media_type,
            digest=top.digest,
            size=top.size,
            platform={"os": config.platform.os, "architecture": config.platform.architecture},
            annotations={
                ANN_PYTHON: config.python.abi,
                ANN_DISTRO: config.platform.distro,
                ANN_GLIBC: config.platform.glibc,
                ANN_DISTRO_BOUND: "true" if config.platform.distro_bound else "false",
            },
        )
        why = _platform_misfit(entry, host)
        abi = abi_of(config.python.executable)
        if why is None and abi != config.python.abi:
            why = f"python {config.python.executable} is {abi or 'missing'}, not {config.python.abi}"
        if why:
            raise InstallError(f"{where}: {_offer(entry)} does not fit this host ({why})")
        return Selected(
            ref_digest=top.digest,
            digest=top.digest,
            manifest=manifest,
            manifest_raw=top_raw,
            config=config,
            config_raw=config_raw,
        )

    index = Index.from_bytes(top_raw, where=where)
    for entry in index.manifests:
        if _platform_misfit(entry, host) is not None:
            continue
        raw = reader.manifest(entry.digest)
        manifest = Manifest.from_bytes(raw, where=f"{where}@{entry.digest}")
        config, config_raw = _config(reader, manifest, where)
        if abi_of(config.python.executable) != entry.annotations.get(ANN_PYTHON, config.python.abi):
            continue
        return Selected(
            ref_digest=top.digest,
            digest=entry.digest,
            manifest=manifest,
            manifest_raw=raw,
            config=config,
            config_raw=config_raw,
        )
    found = ", ".join(f"{exe}={abi or 'missing'}" for exe, abi in sorted(abis.items())) or "not probed"
    offers = "; ".join(_offer(e) for e in index.manifests) or "nothing"
    raise InstallError(
        f"{where}: no platform fits this host ({host.distro}-{host.architecture},"
        f" glibc {host.glibc or 'none'}, python {found}); the index offers: {offers}"
    )
