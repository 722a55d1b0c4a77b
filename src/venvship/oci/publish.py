"""Copy artifacts from an OCI layout to a registry and back, referrers (signatures, SBOMs,
provenance) included, and merge per-platform tags into an index tag.

Order matters: blobs first, then manifests that indexes point to (by digest), then referrers,
then tags, so a tag never points at missing content, nor (for a target whose policy asks for
signatures) at content whose signatures are still on their way. Stdlib only (the build side's
``package`` module is not imported).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from .._fsutil import disk_space
from .._log import activity, logger
from ..artifact.documents import (
    INDEX_TYPE,
    MANIFEST_TYPE,
    Descriptor,
    Index,
    Manifest,
    VenvConfig,
    canonical_json,
    platform_descriptor,
    sha256_digest,
    tag_for_version,
)
from ..artifact.jsondoc import load_object
from ..errors import ArtifactError
from ._http import parallel_map
from .attach import LayoutStore, RegistryStore, Store, copy_referrers
from .layout import Layout
from .reference import RegistryRef
from .referrers import is_referrers_tag
from .registry import MAX_WORKERS, PushOutcome, RegistryClient
from .retag import Retag, TagMoveRefused, moved

_INDEX_TYPES = (INDEX_TYPE, "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True)
class BlobPush:
    """One blob to push: its digest and size, the local file, optionally a repository to mount from."""

    digest: str
    size: int
    path: Path
    mount_from: str | None = None


def push_blobs(
    client: RegistryClient, repo: str, items: Sequence[BlobPush], *, max_workers: int = MAX_WORKERS
) -> list[PushOutcome]:
    """Push ``items`` to ``repo`` with a bounded thread pool; return each outcome, in order."""

    def one(item: BlobPush) -> PushOutcome:
        return client.upload_blob(repo, item.path, item.digest, item.size, mount_from=item.mount_from)

    return parallel_map(one, items, max_workers)


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish_layout` did: tags written and blobs uploaded, mounted or skipped."""

    tags: tuple[str, ...]  # every "REPO:TAG" published
    tags_changed: tuple[str, ...]  # those that pointed elsewhere (or nowhere) before
    manifests: int
    blobs_uploaded: int
    blobs_mounted: int
    blobs_skipped: int
    bytes_uploaded: int
    referrers: int = 0  # referrer manifests the destination did not list before
    retagged: tuple[Retag, ...] = ()  # existing tags that now name other content

    def to_json(self) -> dict[str, object]:
        return {
            "tags": list(self.tags),
            "tags_changed": list(self.tags_changed),
            "manifests": self.manifests,
            "blobs_uploaded": self.blobs_uploaded,
            "blobs_mounted": self.blobs_mounted,
            "blobs_skipped": self.blobs_skipped,
            "bytes_uploaded": self.bytes_uploaded,
            "referrers": self.referrers,
            "retagged": [r.to_json() for r in self.retagged],
        }


@dataclass
class _Plan:
    """Everything one repository needs, gathered from the layout before anything is sent."""

    repo: str
    blobs: dict[str, int]
    name: str  # the layout's NAME
    children: dict[str, tuple[str, bytes]]  # digest → (media type, raw): pushed by digest
    tags: dict[str, tuple[str, bytes]]  # tag → (media type, raw)


@dataclass
class _Counts:
    """What a publish did so far (mutable, private)."""

    uploaded: int = 0
    mounted: int = 0
    skipped: int = 0
    nbytes: int = 0
    manifests: int = 0
    referrers: int = 0


def publish_layout(
    src: Layout,
    ref_names: list[str],
    dest: RegistryRef,
    client: RegistryClient,
    *,
    max_workers: int = MAX_WORKERS,
    immutable_tags: bool = False,
) -> PublishResult:
    """Publish layout refs ``NAME:TAG`` to ``<dest>/NAME:TAG``; ``dest`` is a namespace (or the root).

    An existing tag moved to other content is logged and returned; with ``immutable_tags`` the
    publish is refused (TagMoveRefused) before anything is sent.

    Example: ``publish_layout(Layout.open(p), ["keystone:31.0.0"], parse_ref("reg:5000/os"), client)``
    """
    if dest.tag or dest.digest:
        raise ArtifactError(f"{dest}: publish to a namespace (HOST/NAMESPACE), not to a tag or digest")
    if dest.registry != client.registry:
        raise ArtifactError(f"{dest}: the client talks to {client.registry}")
    plans = _plans(src, ref_names, dest)
    # What every tag names now, asked once before anything is sent: a refused move sends nothing.
    current = {(p.repo, tag): client.check_tag(p.repo, tag) for p in plans for tag in p.tags}
    moves = _moves(client, plans, current)
    if moves and immutable_tags:
        raise TagMoveRefused(moves)
    for move in moves:
        logger.warning("%s", move)
    counts = _Counts()
    pushed_to: dict[str, str] = {}  # blob digest → a repository that has it, for cross-repo mounts
    for plan in plans:
        _push_contents(src, client, plan, counts, pushed_to=pushed_to, max_workers=max_workers)
    tags: list[str] = []
    changed: list[str] = []
    for plan in plans:
        # Manifest tags before index tags: an index's children are in place before anyone sees it.
        for tag, (media_type, raw) in sorted(plan.tags.items(), key=lambda kv: kv[1][0] in _INDEX_TYPES):
            full = f"{client.registry}/{plan.repo}:{tag}"
            tags.append(full)
            if current[(plan.repo, tag)] == sha256_digest(raw):
                continue
            client.put_manifest(plan.repo, tag, raw, media_type)
            counts.manifests += 1
            changed.append(full)
            logger.info("published %s", full)
    return PublishResult(
        tags=tuple(tags),
        tags_changed=tuple(changed),
        manifests=counts.manifests,
        blobs_uploaded=counts.uploaded,
        blobs_mounted=counts.mounted,
        blobs_skipped=counts.skipped,
        bytes_uploaded=counts.nbytes,
        referrers=counts.referrers,
        retagged=tuple(moves),
    )


def _plans(src: Layout, ref_names: list[str], dest: RegistryRef) -> list[_Plan]:
    """Gather, per destination repository, the blobs, child manifests and tags of ``ref_names``."""
    plans: dict[str, _Plan] = {}
    for ref_name in ref_names:
        name, sep, tag = ref_name.rpartition(":")
        if not sep or not name or not tag:
            raise ArtifactError(f"{src.root}: {ref_name!r} is not a ref name NAME:TAG")
        if is_referrers_tag(tag):
            continue  # a referrers list: merged into the destination's with its subject, not copied over it
        repo = dest.with_target(name=name).repository
        plan = plans.setdefault(repo, _Plan(repo=repo, name=name, blobs={}, children={}, tags={}))
        desc = src.resolve(ref_name)
        raw = src.read_blob(desc.digest)
        plan.tags[tag] = (desc.media_type, raw)
        _collect(src, desc.media_type, raw, plan, where=f"{src.root}:{ref_name}")
    return list(plans.values())


def _moves(
    client: RegistryClient, plans: list[_Plan], current: dict[tuple[str, str], str | None]
) -> list[Retag]:
    """Return the tags of ``plans`` that name other content now (an index only gaining platforms stays)."""
    out = []
    for plan in plans:
        for tag, (media_type, raw) in sorted(plan.tags.items()):
            old, new = current[(plan.repo, tag)], sha256_digest(raw)
            if old is None or old == new:
                continue
            if media_type in _INDEX_TYPES:
                _, old_raw, _ = client.get_manifest(plan.repo, old)
                if not moved(old_raw, raw, index=True):
                    continue
            out.append(Retag(ref=f"{client.registry}/{plan.repo}:{tag}", old=old, new=new))
    return out


def _layout_move(dest: Layout, ref_name: str, top: Descriptor, raw: bytes) -> tuple[Retag, ...]:
    """Return the move of the layout tag ``ref_name`` to ``top`` (logged), as :func:`_moves` does."""
    old = dest.refs().get(ref_name)
    if old is None or old.digest == top.digest:
        return ()
    if top.media_type in _INDEX_TYPES and not moved(dest.read_blob(old.digest), raw, index=True):
        return ()
    move = Retag(ref=ref_name, old=old.digest, new=top.digest)
    logger.warning("%s", move)
    return (move,)


def _push_contents(
    src: Layout,
    client: RegistryClient,
    plan: _Plan,
    counts: _Counts,
    *,
    pushed_to: dict[str, str],
    max_workers: int,
) -> None:
    """Push one repository's blobs, then its child manifests by digest, then their referrers."""
    items = [
        BlobPush(digest=d, size=s, path=src.blob_path(d), mount_from=pushed_to.get(d))
        for d, s in sorted(plan.blobs.items())
    ]
    for item in items:
        if not src.has_blob(item.digest, item.size):
            raise ArtifactError(f"{src.root}: blob {item.digest} is missing or has the wrong size")
    with activity(f"pushing {len(items)} blobs to {client.registry}/{plan.repo}"):
        outcomes = push_blobs(client, plan.repo, items, max_workers=max_workers)
    for item, outcome in zip(items, outcomes):
        pushed_to.setdefault(item.digest, plan.repo)
        if outcome == "uploaded":
            counts.uploaded += 1
            counts.nbytes += item.size
        elif outcome == "mounted":
            counts.mounted += 1
        else:
            counts.skipped += 1
    for digest, (media_type, raw) in plan.children.items():
        client.put_manifest(plan.repo, digest, raw, media_type)
        counts.manifests += 1
    subjects = [*plan.children, *(sha256_digest(raw) for _, raw in plan.tags.values())]
    here, there = LayoutStore(src, plan.name), RegistryStore(client, plan.repo)
    counts.referrers += sum(copy_referrers(here, there, d) for d in dict.fromkeys(subjects))


class FetchStore(Store, Protocol):
    """A store whose blobs can be streamed into a layout (a registry's, a served layout's)."""

    def fetch_blob(self, digest: str, size: int, dest: Layout) -> bool: ...


def fetch_to_layout(
    store: FetchStore, reference: str, dest: Layout, name: str, *, digest: str | None = None
) -> PublishResult:
    """Copy the artifact ``reference`` (a tag) of a registry repository or a served layout into the
    layout ``dest`` as ``NAME:TAG``, with every platform's blobs and every referrer: for an
    air-gapped host. ``digest``: the one the tag named when it was checked, read by that digest.

    Example: ``fetch_to_layout(RegistryStore(client, "venvs/demo"), "1.0", Layout.create(p), "demo")``
    """
    top, raw = store.get_manifest(digest or reference)
    documents = [(top, raw)]
    if top.media_type in _INDEX_TYPES:
        documents += [
            store.get_manifest(m.digest) for m in Index.from_bytes(raw, where=store.where).manifests
        ]
    fetched = nbytes = 0
    blobs = []
    for desc, doc_raw in documents[1:] if len(documents) > 1 else documents:
        manifest = Manifest.from_bytes(doc_raw, where=f"{store.where}@{desc.digest}")
        blobs += [manifest.config, *manifest.layers]
    missing = {b.digest: b.size for b in blobs if not dest.has_blob(b.digest, b.size)}
    with disk_space(dest.root, needed=sum(missing.values())):
        for blob in blobs:
            if store.fetch_blob(blob.digest, blob.size, dest):
                fetched += 1
                nbytes += blob.size
        for _, doc_raw in reversed(documents):  # the index last: its manifests are there before it
            dest.put_bytes(doc_raw)
        here = LayoutStore(dest, name)
        referrers = sum(copy_referrers(store, here, desc.digest) for desc, _ in documents)
        retagged = _layout_move(dest, f"{name}:{reference}", top, raw)
        changed = dest.set_refs({f"{name}:{reference}": top})
    return PublishResult(
        tags=(f"{name}:{reference}",),
        tags_changed=tuple(changed),
        manifests=len(documents),
        blobs_uploaded=fetched,
        blobs_mounted=0,
        blobs_skipped=0,
        bytes_uploaded=nbytes,
        referrers=referrers,
        retagged=retagged,
    )


def _collect(src: Layout, media_type: str, raw: bytes, plan: _Plan, *, where: str, depth: int = 0) -> None:
    """Add the blobs (and, for an index, the child manifests) under one document to ``plan``."""
    if depth > 4:
        raise ArtifactError(f"{where}: indexes nested too deeply")
    doc = load_object(raw, where)
    if media_type in _INDEX_TYPES or "manifests" in doc:
        for i, entry in enumerate(doc.get("manifests") or []):
            child = Descriptor.from_json(entry, where=f"{where} manifests[{i}]")
            child_raw = src.read_blob(child.digest)
            plan.children[child.digest] = (child.media_type, child_raw)
            _collect(src, child.media_type, child_raw, plan, where=f"{where}@{child.digest}", depth=depth + 1)
        return
    described = [doc.get("config"), *(doc.get("layers") or [])]
    for i, entry in enumerate(d for d in described if d is not None):
        blob = Descriptor.from_json(entry, where=f"{where} blob[{i}]")
        plan.blobs[blob.digest] = blob.size


def merge_registry_index(
    client: RegistryClient,
    repo: str,
    version: str,
    *,
    before_tag: Callable[[Descriptor, Sequence[str]], object] | None = None,
    immutable_tag: bool = False,
) -> str:
    """Write the index tag ``VERSION`` over every ``VERSION-*`` platform tag of ``repo``; return its digest.

    Idempotent: the same platform tags give the same index bytes, and an unchanged tag is not
    rewritten. Two different manifests for one platform is an error. ``before_tag`` runs once the
    index is stored by digest, before the tag names it, with the platform manifests' digests (to
    verify and sign them first). ``immutable_tag`` refuses to move an existing tag to other content.

    Example: ``merge_registry_index(client, "openstack/keystone", "31.0.0")``
    """
    tag = tag_for_version(version)
    where = f"{client.registry}/{repo}"
    entries: list[Descriptor] = []
    seen: dict[tuple[str, ...], tuple[str, str]] = {}  # platform → (tag, digest)
    for platform_tag in sorted(t for t in client.list_tags(repo) if t.startswith(tag + "-")):
        media_type, raw, digest = client.get_manifest(repo, platform_tag)
        if media_type != MANIFEST_TYPE:
            logger.warning("%s:%s: skipped, not an image manifest (%s)", where, platform_tag, media_type)
            continue
        manifest = Manifest.from_bytes(raw, where=f"{where}:{platform_tag}")
        config_raw = client.get_blob_bytes(repo, manifest.config.digest)
        config = VenvConfig.from_json(load_object(config_raw, f"{where}:{platform_tag} config"))
        if tag_for_version(config.version) != tag:
            logger.warning("%s:%s: skipped, it holds version %s", where, platform_tag, config.version)
            continue
        desc = platform_descriptor(config, raw)
        plat = desc.platform or {}
        key = (plat.get("os", ""), plat.get("architecture", ""), plat.get("variant", ""),
               config.python.abi, config.platform.distro)  # fmt: skip
        if key in seen:
            other_tag, other_digest = seen[key]
            if other_digest == digest:
                continue
            raise ArtifactError(
                f"{where}: two manifests for platform {'/'.join(filter(None, key))}: "
                f"{other_tag} ({other_digest}) and {platform_tag} ({digest}); delete one tag"
            )
        seen[key] = (platform_tag, digest)
        entries.append(desc)
    if not entries:
        raise ArtifactError(f"{where}: no per-platform tags {tag}-* to merge; publish the platforms first")
    raw_index = canonical_json(Index(manifests=tuple(entries)).to_json())
    digest = sha256_digest(raw_index)
    existing = client.check_tag(repo, tag)
    if immutable_tag and existing is not None and existing != digest:
        raise ArtifactError(f"{where}:{tag}: already names {existing}; --immutable-tags refuses to move it")
    if before_tag is not None:
        client.put_manifest(repo, digest, raw_index, INDEX_TYPE)
        before_tag(
            Descriptor(media_type=INDEX_TYPE, digest=digest, size=len(raw_index)), [e.digest for e in entries]
        )
    if existing != digest:
        client.put_manifest(repo, tag, raw_index, INDEX_TYPE)
        logger.info("%s:%s: index of %d platforms", where, tag, len(entries))
    return digest
