"""Read an artifact back: its platforms and locked packages (``inspect``), and what changed between
two, settings and packages (``diff``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

from ..artifact.documents import INDEX_TYPE, Descriptor, Index, Manifest, VenvConfig, Wheel
from ..artifact.sigbundle import BUNDLE_TYPE
from ..artifact.sigformat import SBOM_TYPE, SIG_ARTIFACT_TYPE, parse_referrer
from ..artifact.siglisting import listed_signatures
from ..errors import ArtifactError, BadReference
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.source import Access, Source, open_source


@dataclass(frozen=True)
class Attached:
    """What is attached to one digest: its signatures (the key id each names, its format: ``simple``
    or ``bundle``), and its other referrers (artifact type → count). Signatures are shown as they
    claim; ``venv-pull`` verifies them."""

    signatures: tuple[tuple[str, str], ...] = ()
    others: tuple[tuple[str, int], ...] = ()

    @property
    def signers(self) -> tuple[str, ...]:
        """The key ids the signatures name, each once."""
        return tuple(dict.fromkeys(key for key, _ in self.signatures))

    def to_json(self) -> dict[str, object]:
        return {
            "signed_by": list(self.signers),
            "signatures": [{"key": key, "format": form} for key, form in self.signatures],
            "referrers": dict(self.others),
        }


@dataclass(frozen=True)
class PlatformView:
    """One platform manifest of an artifact and its config."""

    digest: str
    size: int
    config: VenvConfig
    manifest: Manifest
    attached: Attached = Attached()

    @property
    def key(self) -> str:
        return self.config.platform_key


@dataclass(frozen=True)
class ArtifactView:
    """An artifact as ``inspect`` shows it: the reference, its digest, one view per platform."""

    ref: str
    digest: str
    media_type: str
    platforms: tuple[PlatformView, ...]
    attached: Attached = Attached()

    def to_json(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "mediaType": self.media_type,
            **self.attached.to_json(),
            "platforms": [
                {
                    "key": p.key,
                    "digest": p.digest,
                    "size": p.size,
                    "name": p.config.name,
                    "version": p.config.version,
                    "install_path": p.config.install_path,
                    "install_tool": p.config.install_tool,
                    "glibc": p.config.platform.glibc,
                    "distro_bound": p.config.platform.distro_bound,
                    "packages": [_package(p.config, w) for w in p.config.lock],
                    "tools": [w.to_json() for w in p.config.tools],
                    "layers": [d.to_json() for d in p.config.layers.distributions] if p.config.layers else [],
                    "total_size": sum(layer.size for layer in p.manifest.layers),
                    **p.attached.to_json(),
                }
                for p in self.platforms
            ],
        }


def _package(config: VenvConfig, wheel: Wheel) -> dict[str, object]:
    """Return a locked wheel as ``inspect --json`` lists it: with ``vcs``, the URL and commit it
    was built from, when it came from a VCS, and with ``url`` where a direct URL's archive came from."""
    vcs = config.vcs_source(wheel.filename)
    url = config.download_urls.get(wheel.filename)
    return {**wheel.to_json(), **({"vcs": vcs} if vcs else {}), **({"url": url} if url else {})}


def _platform(source: Source, digest: str, scratch: Layout) -> PlatformView:
    desc, raw = source.get_manifest(digest)
    manifest = Manifest.from_bytes(raw, where=f"manifest {digest}")
    source.fetch_blob(manifest.config.digest, manifest.config.size, scratch)
    config = VenvConfig.from_bytes(scratch.read_blob(manifest.config.digest), where=f"{digest} config")
    attached = attached_to(source, desc.digest, scratch)
    return PlatformView(
        digest=desc.digest, size=desc.size, config=config, manifest=manifest, attached=attached
    )


def attached_to(source: Source, digest: str, scratch: Layout) -> Attached:
    """Return what the referrers of ``digest`` hold: who signed it, and what else is attached."""
    entries = source.referrers(digest)
    others: dict[str, int] = {}
    for entry in entries:
        if entry.artifact_type and entry.artifact_type not in (SIG_ARTIFACT_TYPE, BUNDLE_TYPE):
            others[entry.artifact_type] = others.get(entry.artifact_type, 0) + 1

    def blob(desc: Descriptor) -> bytes:
        source.fetch_blob(desc.digest, desc.size, scratch)
        return scratch.read_blob(desc.digest)

    listed = listed_signatures(digest, entries, manifest=lambda d: source.get_manifest(d)[1], blob=blob)
    signatures = [(item.key_hint or "an unnamed key", item.form) for item in listed if not item.problem]
    return Attached(signatures=tuple(dict.fromkeys(signatures)), others=tuple(sorted(others.items())))


def inspect_ref(ref: Ref, access: Access | None = None) -> ArtifactView:
    """Return what the artifact at ``ref`` holds, per platform.

    Example: ``inspect_ref(parse_ref("oci:build/oci:demo:1.0")).platforms[0].config.lock``
    """
    target = ref.digest or ref.tag
    if target is None:
        raise BadReference(f"{ref}: name a tag or digest")
    source = open_source(ref, access)
    desc, raw = source.get_manifest(target)
    with TemporaryDirectory(prefix="venvship-inspect-") as tmp:
        scratch = Layout.create(Path(tmp))
        if desc.media_type == INDEX_TYPE:
            digests = [m.digest for m in Index.from_bytes(raw).manifests]
        else:
            digests = [desc.digest]
        platforms = tuple(_platform(source, d, scratch) for d in digests)
        attached = attached_to(source, desc.digest, scratch) if desc.media_type == INDEX_TYPE else Attached()
    return ArtifactView(
        ref=str(ref), digest=desc.digest, media_type=desc.media_type, platforms=platforms, attached=attached
    )


def read_sbom(ref: Ref, access: Access | None = None) -> bytes:
    """Return the SBOM attached to the per-platform manifest ``ref`` names (or to an index's only one).

    Example: ``read_sbom(parse_ref("oci:build/oci:demo:1.0-debian-12-amd64-cp311"))``
    """
    target = ref.digest or ref.tag
    if target is None:
        raise BadReference(f"{ref}: name a tag or digest")
    source = open_source(ref, access)
    desc, raw = source.get_manifest(target)
    if desc.media_type == INDEX_TYPE:
        entries = Index.from_bytes(raw, where=str(ref)).manifests
        if len(entries) != 1:
            raise ArtifactError(
                f"{ref}: an index of {len(entries)} platforms; name one platform's tag (VERSION-PLATFORM)"
            )
        desc = entries[0]
    for entry in source.referrers(desc.digest):
        referrer = parse_referrer(
            source.get_manifest(entry.digest)[1], where=f"{ref} referrer {entry.digest}"
        )
        layers = [d for d in referrer.layers if d.media_type == SBOM_TYPE]
        if referrer.artifact_type == SBOM_TYPE and referrer.subject == desc.digest and layers:
            with TemporaryDirectory(prefix="venvship-sbom-") as tmp:
                scratch = Layout.create(Path(tmp))
                source.fetch_blob(layers[0].digest, layers[0].size, scratch)
                return scratch.read_blob(layers[0].digest, max_size=64 << 20)
    raise ArtifactError(f"{ref}@{desc.digest}: no SBOM attached (venvship build attaches one)")


@dataclass(frozen=True)
class Change:
    """One package that differs between two artifacts of one platform."""

    name: str
    old: Wheel | None
    new: Wheel | None

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"


@dataclass(frozen=True)
class Setting:
    """One setting of the config that differs: its name, old and new value."""

    name: str
    old: object
    new: object

    def to_json(self) -> dict[str, object]:
        return {"setting": self.name, "old": self.old, "new": self.new}


def settings_of(config: VenvConfig) -> dict[str, object]:
    """Return what an artifact's config sets beyond its packages, each as JSON data.

    Example: ``settings_of(view.platforms[0].config)["install_tool"]`` → ``"uv 0.13.9"``
    """
    tool = next((w for w in config.tools if w.name.lower() == config.install_tool), None)
    python = config.python
    return {
        "version": config.version,
        "python": f"{python.executable} ({python.implementation} {python.version}, {python.abi})",
        "install_path": config.install_path,
        "install_tool": f"{config.install_tool} {tool.version}" if tool else config.install_tool,
        "glibc": config.platform.glibc,
        "distro_packages": list(config.install_distro_packages),
        "distro_package_state": config.distro_package_state,
        "distro_cache_valid_time": config.distro_cache_valid_time,
        "env": dict(sorted(config.install_env.items())),
        "pip_args": list(config.install_pip_args),
        "symlinks": list(config.symlink_system_packages),
        "facts": [f"{f.file}: [{f.section}] {f.option} = {f.value}" for f in config.facts],
    }


@dataclass(frozen=True)
class Diff:
    """Per platform key present in both artifacts, the settings and the packages that differ
    (packages added, removed and changed); and the platform keys of only one of them."""

    changes: dict[str, tuple[Change, ...]]
    only_old: tuple[str, ...]
    only_new: tuple[str, ...]
    settings: dict[str, tuple[Setting, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "settings": {key: [s.to_json() for s in found] for key, found in self.settings.items()},
            "platforms": {
                key: [
                    {
                        "name": c.name,
                        "change": c.kind,
                        "old": c.old.version if c.old else None,
                        "new": c.new.version if c.new else None,
                        "old_sha256": c.old.sha256 if c.old else None,
                        "new_sha256": c.new.sha256 if c.new else None,
                    }
                    for c in changes
                ]
                for key, changes in self.changes.items()
            },
            "platforms_removed": list(self.only_old),
            "platforms_added": list(self.only_new),
        }


def diff_views(old: ArtifactView, new: ArtifactView) -> Diff:
    """Return what changed from ``old`` to ``new`` (a rebuilt wheel of one version counts as changed)."""
    olds = {p.key: p for p in old.platforms}
    news = {p.key: p for p in new.platforms}
    # Two single-platform manifests of different platforms still compare with each other.
    if len(olds) == 1 and len(news) == 1 and olds.keys() != news.keys():
        news = {next(iter(olds)): next(iter(news.values()))}
    changes: dict[str, tuple[Change, ...]] = {}
    settings: dict[str, tuple[Setting, ...]] = {}
    for key in sorted(olds.keys() & news.keys()):
        a_set, b_set = settings_of(olds[key].config), settings_of(news[key].config)
        settings[key] = tuple(
            Setting(name=n, old=a_set[n], new=b_set[n]) for n in a_set if a_set[n] != b_set[n]
        )
        a = {w.name.lower(): w for w in olds[key].config.lock}
        b = {w.name.lower(): w for w in news[key].config.lock}
        changes[key] = tuple(
            Change(name=(b.get(n) or a[n]).name, old=a.get(n), new=b.get(n))
            for n in sorted(a.keys() | b.keys())
            if a.get(n) is None or b.get(n) is None or a[n].sha256 != b[n].sha256
        )
    return Diff(
        changes=changes,
        only_old=tuple(sorted(olds.keys() - news.keys())),
        only_new=tuple(sorted(news.keys() - olds.keys())),
        settings=settings,
    )
