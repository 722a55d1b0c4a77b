"""Platform selection: pick the one manifest of a reference that fits this host (DESIGN §4)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ..artifact.documents import (
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
from ..errors import ArtifactError, BadReference, InstallError, TrustError, VenvshipError
from ..host.info import (
    Interpreter,
    detect_musl,
    distro_key,
    glibc_version,
    go_arch,
    host_variant,
    normalize_platform,
    probe_python,
    runnable_variants,
    version_tuple,
)
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.source import Source

# What Layout.read_blob reads whole: a config, a signature payload.
READ_WHOLE = 16 << 20
# An index lists one entry per platform built: far fewer than this.
MAX_PLATFORMS = 256

# The musl floor of an entry built from musllinux wheels (builder/tags.py musl_floor). It belongs
# next to ANN_GLIBC in artifact/documents.py once the build writes it; selection reads it already.
ANN_MUSL = "io.venvship.musl"


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
        if desc.size > READ_WHOLE:
            # Read before any signature is checked: the size is the source's word, and the
            # download would fill the scratch folder (often a tmpfs) before the digest is.
            raise ArtifactError(
                f"blob {desc.digest}: {desc.size} bytes, more than the {READ_WHOLE >> 20} MiB a "
                "config or signature may hold"
            )
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
    raw = reader.read(manifest.config)
    return VenvConfig.from_bytes(raw, where=f"{where} config"), raw


@dataclass(frozen=True)
class Host:
    """What this host offers: architecture and variant, distro key, libc; ABIs come from probing.

    ``glibc`` and ``musl`` hold the version of the C library the host runs; at most one is set.
    """

    architecture: str
    distro: str
    glibc: str
    variant: str = ""
    musl: str = ""

    @classmethod
    def detect(cls) -> Host:
        glibc = glibc_version()
        return cls(
            architecture=go_arch(),
            variant=host_variant(),
            distro=distro_key(),
            glibc=glibc,
            # Only a host without glibc looks for a musl loader (it runs one process).
            musl="" if glibc else detect_musl(),
        )

    @property
    def libc(self) -> str:
        """Return ``glibc 2.36``, ``musl 1.2.4`` or ``libc unknown``."""
        if self.glibc:
            return f"glibc {self.glibc}"
        return f"musl {self.musl}" if self.musl else "libc unknown"

    def describe(self) -> str:
        """Return ``debian-12-amd64/v3, glibc 2.36``: what error messages say of this host."""
        return f"{self.distro}-{_arch_name(self.architecture, self.variant)}, {self.libc}"


def _arch_name(architecture: str, variant: str) -> str:
    return f"{architecture}/{variant}" if variant else architecture


def _arch(desc: Descriptor) -> tuple[str, str]:
    """Return the normalized (architecture, variant) of index entry ``desc``."""
    plat = desc.platform or {}
    return normalize_platform(plat.get("architecture", "?"), plat.get("variant", ""))


def _offer(desc: Descriptor) -> str:
    ann = desc.annotations
    text = f"{ann.get(ANN_DISTRO, '?')}-{_arch_name(*_arch(desc))}-{ann.get(ANN_PYTHON, '?')}"
    if ann.get(ANN_GLIBC):
        text += f" (glibc {ann[ANN_GLIBC]})"
    if ann.get(ANN_MUSL):
        text += f" (musl {ann[ANN_MUSL]})"
    return text


def _variant_rank(desc: Descriptor, host: Host) -> int | None:
    """Return where ``desc``'s architecture variant stands among those ``host`` runs (0 = its own)."""
    arch, variant = _arch(desc)
    if arch != normalize_platform(host.architecture)[0]:
        return None
    runs = runnable_variants(host.architecture, host.variant)
    return runs.index(variant) if variant in runs else None


def _libc_misfit(ann: Mapping[str, str], host: Host) -> str | None:
    """Return why an entry's libc floor (glibc or musl) rules ``host`` out, or None."""
    glibc, musl = ann.get(ANN_GLIBC, ""), ann.get(ANN_MUSL, "")
    if glibc and musl:
        return f"needs both glibc {glibc} and musl {musl}"
    if glibc and host.musl:
        return f"built for glibc {glibc}, this host runs musl {host.musl}"
    if musl and host.glibc:
        return f"built for musl {musl}, this host runs glibc {host.glibc}"
    if glibc and (not host.glibc or version_tuple(glibc) > version_tuple(host.glibc)):
        return f"glibc {glibc} > {host.glibc or 'none'}"
    if musl and (not host.musl or version_tuple(musl) > version_tuple(host.musl)):
        return f"musl {musl} > {host.musl or 'none'}"
    return None


def _glibc_only(desc: Descriptor) -> bool:
    """True if ``desc`` was built from manylinux or linux_* wheels on glibc (it carries a glibc floor)."""
    return bool(desc.annotations.get(ANN_GLIBC)) and not desc.annotations.get(ANN_MUSL)


def _platform_misfit(desc: Descriptor, host: Host) -> str | None:
    """Return why index entry ``desc`` cannot run on ``host`` (ABI aside), or None."""
    plat = desc.platform or {}
    if plat.get("os", "linux") != "linux":
        return f"os {plat.get('os')}"
    if _variant_rank(desc, host) is None:
        return f"architecture {_arch_name(*_arch(desc))}"
    ann = desc.annotations
    if ann.get(ANN_DISTRO_BOUND) == "true" and ann.get(ANN_DISTRO) != host.distro:
        return f"distro {ann.get(ANN_DISTRO)}"
    return _libc_misfit(ann, host)


class _Abis:
    """The ABI of each interpreter an artifact names, probed once each ("" when it is missing)."""

    def __init__(self, probe: Callable[[str], Interpreter]) -> None:
        self.probe = probe
        self.found: dict[str, str] = {}
        self.why: dict[str, str] = {}

    def __call__(self, executable: str) -> str:
        if executable not in self.found:
            try:
                self.found[executable] = self.probe(executable).info.abi
            except TrustError:
                raise  # refused, not missing: the artifact named what venv-pull may not run
            except VenvshipError as exc:
                self.found[executable] = ""  # this python is unusable here: no entry for it can fit
                self.why[executable] = str(exc)
        return self.found[executable]

    def text(self) -> str:
        return (
            ", ".join(
                f"{exe}={abi}" if abi else f"{exe} unusable: {self.why.get(exe, 'missing')}"
                for exe, abi in sorted(self.found.items())
            )
            or "not probed"
        )


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
    top, top_raw = resolve_top(reader.source, ref)
    abis = _Abis(probe)
    if media_type_of(top_raw) != INDEX_TYPE:
        return _single(reader, top, top_raw, where=str(ref), host=host, abis=abis)
    where = str(ref)
    index = Index.from_bytes(top_raw, where=where)
    if len(index.manifests) > MAX_PLATFORMS:
        # Each fitting entry costs a manifest and a config read before any signature is checked.
        raise ArtifactError(
            f"{where}: an index of {len(index.manifests)} platforms, more than {MAX_PLATFORMS}"
        )
    offers = "; ".join(_offer(e) for e in index.manifests) or "nothing"
    if host.musl and index.manifests and all(_glibc_only(e) for e in index.manifests):
        raise InstallError(
            f"{where}: this host runs musl {host.musl}; the index offers only glibc builds: {offers}"
        )
    fitting = [e for e in index.manifests if _platform_misfit(e, host) is None]
    # The closest variant first (amd64/v3 before amd64 on a v3 host), as containerd orders them;
    # the sort is stable, so the index order decides among equals.
    for entry in sorted(fitting, key=lambda e: _variant_rank(e, host) or 0):
        raw = reader.manifest(entry.digest)
        manifest = Manifest.from_bytes(raw, where=f"{where}@{entry.digest}")
        config, config_raw = _config(reader, manifest, where)
        if abis(config.python.executable) != entry.annotations.get(ANN_PYTHON, config.python.abi):
            continue
        return Selected(
            ref_digest=top.digest,
            digest=entry.digest,
            manifest=manifest,
            manifest_raw=raw,
            config=config,
            config_raw=config_raw,
        )
    raise InstallError(
        f"{where}: no platform fits this host ({host.describe()}, python {abis.text()}); the index offers: {offers}"
    )


def _single(
    reader: BlobReader, top: Descriptor, top_raw: bytes, *, where: str, host: Host, abis: _Abis
) -> Selected:
    """Return a reference to one per-platform manifest as selected, if it fits ``host``."""
    manifest = Manifest.from_bytes(top_raw, where=where)
    config, config_raw = _config(reader, manifest, where)
    plat = {"os": config.platform.os, "architecture": config.platform.architecture}
    if config.platform.variant:
        plat["variant"] = config.platform.variant
    entry = Descriptor(
        media_type=top.media_type,
        digest=top.digest,
        size=top.size,
        platform=plat,
        annotations={
            ANN_PYTHON: config.python.abi,
            ANN_DISTRO: config.platform.distro,
            ANN_GLIBC: config.platform.glibc,
            ANN_DISTRO_BOUND: "true" if config.platform.distro_bound else "false",
        },
    )
    why = _platform_misfit(entry, host)
    abi = abis(config.python.executable)
    if why is None and abi != config.python.abi:
        why = (
            f"python {config.python.executable} is {abi}, not {config.python.abi}"
            if abi
            else abis.why.get(config.python.executable, f"python {config.python.executable} is missing")
        )
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
