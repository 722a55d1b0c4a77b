"""Pull the blobs a selected manifest's install needs into the digest-keyed cache: its ready-to-run
layers (or, with ``--from-wheels``, its wheels and install tool), verified while streaming, over a
bounded pool. The one blob fetcher of the target side."""

from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath
from typing import Callable

from .._log import logger
from ..artifact.documents import MANIFEST_TYPE, Descriptor, VenvConfig, Wheel, tag_for_version
from ..errors import ArtifactError, InstallError
from ..oci.layout import Layout
from ..oci.source import Source
from ..verify.select import Selected
from . import cachestore

PULL_WORKERS = 4


def wheels_of(config: VenvConfig) -> tuple[Wheel, ...]:
    """Return the lock's wheels and the tool wheels, each digest once."""
    seen: set[str] = set()
    out = []
    for wheel in (*config.lock, *config.tools):
        if wheel.digest not in seen:
            seen.add(wheel.digest)
            out.append(wheel)
    return tuple(out)


def needed(selected: Selected, *, from_wheels: bool) -> list[Descriptor]:
    """Return the manifest layers an install of ``selected`` unpacks or installs, each checked
    against the config: one layer per distribution of the lock, made from the lock's own wheel."""
    config = selected.config
    layers = {layer.digest: layer for layer in selected.manifest.layers}
    out: dict[str, Descriptor] = {}
    if from_wheels or config.layers is None:
        wanted = [(w.digest, w.size, w.filename) for w in wheels_of(config)]
    else:
        by_wheel = config.layers.by_wheel()
        missing = [w.filename for w in config.lock if w.sha256 not in by_wheel]
        if missing or len(config.layers.distributions) != len(config.lock):
            raise ArtifactError(
                f"manifest {selected.digest}: the layers do not match the lock ({missing[:3]})"
            )
        wanted = [(d.digest, d.size, d.title) for d in config.layers.distributions]
    for digest, size, what in wanted:
        layer = layers.get(digest)
        if layer is None or layer.size != size:
            raise ArtifactError(f"manifest {selected.digest}: no layer for {what}")
        out[digest] = layer
    return list(out.values())


def referenced_digests(selected: Selected, *, from_wheels: bool) -> list[str]:
    """Return every cache blob a generation of ``selected`` needs (manifest, config, layers)."""
    return [
        selected.digest,
        selected.manifest.config.digest,
        *(d.digest for d in needed(selected, from_wheels=from_wheels)),
    ]


def pull(
    source: Source,
    cache: Layout,
    selected: Selected,
    *,
    from_wheels: bool,
    on_blob: Callable[[int, int, int], None] | None = None,
) -> int:
    """Fetch the missing blobs ``selected``'s install needs into ``cache`` (verified while streaming).

    Returns the number fetched (not those another install on this host fetched meanwhile);
    ``on_blob(n, total, bytes)`` is called after the n-th missing one is there. The
    manifest goes in last and is tagged in the cache, so the cache stays a valid layout whose refs
    only name complete artifacts.
    """
    missing = [d for d in needed(selected, from_wheels=from_wheels) if not cache.has_blob(d.digest, d.size)]
    total, done, fetched = sum(d.size for d in missing), 0, 0

    def fetch(desc: Descriptor) -> bool:
        # Another install on this host may be fetching the same blob: it comes once, and this one
        # then finds it in the cache (fetch_blob looks there first).
        with cachestore.blob_lock(cache.root, desc.digest, step="pull"):
            return source.fetch_blob(desc.digest, desc.size, cache)

    # Blobs come over a bounded pool: a registry's round trips overlap (each blob is still
    # verified while it streams, and lands in the cache by one rename).
    with ThreadPoolExecutor(max_workers=max(1, min(PULL_WORKERS, len(missing)))) as pool:
        futures = {pool.submit(fetch, d): d for d in missing}
        try:
            for n, future in enumerate(as_completed(futures), start=1):
                fetched += future.result()
                desc = futures[future]
                done += desc.size
                logger.debug("pulled %d/%d: %s", n, len(missing), desc.title or desc.digest)
                if on_blob is not None:
                    on_blob(n, len(missing), done)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    cache.put_bytes(selected.config_raw)
    cache.put_bytes(selected.manifest_raw)
    config = selected.config
    tag = f"{config.name}:{tag_for_version(config.version)}-{config.platform_key}"
    cache.set_refs(
        {tag: Descriptor(media_type=MANIFEST_TYPE, digest=selected.digest, size=len(selected.manifest_raw))}
    )
    if total:
        logger.debug("pulled %d bytes", total)
    return fetched


def check_wheel(path: Path, *, filename: str) -> None:
    """Refuse a wheel whose members would land outside the venv (absolute, ``..``, links)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if (
                    name.startswith(("/", "\\"))
                    or ".." in parts
                    or (parts and ":" in parts[0])
                    or "\0" in name
                ):
                    raise InstallError(f"wheel {filename}: unsafe member path {name!r}")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise InstallError(f"wheel {filename}: member {name!r} is a symlink")
    except zipfile.BadZipFile as exc:
        raise InstallError(f"wheel {filename}: not a valid zip file ({exc})") from exc


def find_links(cache: Layout, config: VenvConfig, parent: Path) -> Path:
    """Return a temp folder of symlinks named by wheel file name → cache blobs (re-hashed, checked)."""
    folder = Path(tempfile.mkdtemp(prefix="wheels-", dir=parent))
    for wheel in config.lock:
        blob = cache.blob_path(wheel.digest)
        if not cache.verify_blob(wheel.digest, wheel.size):
            raise InstallError(f"{blob}: the cached {wheel.filename} does not hash to {wheel.digest}")
        check_wheel(blob, filename=wheel.filename)
        os.symlink(blob, folder / wheel.filename)
    return folder
