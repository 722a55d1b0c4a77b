"""Pull a selected manifest's blobs into the digest-keyed cache and check the wheels before use."""

from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath
from typing import Callable

from .._log import logger
from ..artifact import MANIFEST_TYPE, VenvConfig, Wheel, tag_for_version
from ..errors import ArtifactError, InstallError
from ..oci.layout import Layout
from ..oci.source import Source
from .select import Selected

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


def referenced_digests(selected: Selected) -> list[str]:
    """Return every cache blob a generation of ``selected`` needs (manifest, config, wheels)."""
    return [
        selected.digest,
        selected.manifest.config.digest,
        *(w.digest for w in wheels_of(selected.config)),
    ]


def pull(
    source: Source, cache: Layout, selected: Selected, *, on_blob: Callable[[int], None] | None = None
) -> int:
    """Fetch the missing blobs of ``selected`` into ``cache`` (verified while streaming).

    Returns the number of blobs fetched; ``on_blob(n)`` is called after the n-th of them. The manifest goes in last and is tagged in the cache,
    so the cache stays a valid layout whose refs only name complete artifacts.
    """
    layers = {layer.digest: layer for layer in selected.manifest.layers}
    for wheel in wheels_of(selected.config):
        layer = layers.get(wheel.digest)
        if layer is None or layer.size != wheel.size:
            raise ArtifactError(f"manifest {selected.digest}: no layer for wheel {wheel.filename}")
    missing = list(
        {
            layer.digest: layer
            for layer in selected.manifest.layers
            if not cache.has_blob(layer.digest, layer.size)
        }.values()
    )
    # Blobs come over a bounded pool: a registry's round trips overlap (each blob is still
    # verified while it streams, and lands in the cache by one rename).
    with ThreadPoolExecutor(max_workers=max(1, min(PULL_WORKERS, len(missing)))) as pool:
        futures = {
            pool.submit(source.fetch_blob, layer.digest, layer.size, cache): layer for layer in missing
        }
        try:
            for n, future in enumerate(as_completed(futures), start=1):
                future.result()
                logger.debug(
                    "pulled %d/%d: %s", n, len(missing), futures[future].title or futures[future].digest
                )
                if on_blob is not None and n < len(missing):
                    on_blob(n)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    cache.put_bytes(selected.config_raw)
    cache.put_bytes(selected.manifest_raw)
    config = selected.config
    from ..artifact import Descriptor

    cache.set_refs(
        {
            f"{config.name}:{tag_for_version(config.version)}-{config.platform_key}": Descriptor(
                media_type=MANIFEST_TYPE, digest=selected.digest, size=len(selected.manifest_raw)
            )
        }
    )
    return len(missing)


def check_wheel(path: Path, *, filename: str) -> None:
    """Refuse a wheel whose members would land outside the venv (absolute, ``..``, links)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise InstallError(f"wheel {filename}: unsafe member path {name!r}")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise InstallError(f"wheel {filename}: member {name!r} is a symlink")
    except zipfile.BadZipFile as exc:
        raise InstallError(f"wheel {filename}: not a valid zip file ({exc})") from exc


def find_links(cache: Layout, config: VenvConfig, parent: Path) -> Path:
    """Return a temp folder of symlinks named by wheel file name → cache blobs (checked)."""
    folder = Path(tempfile.mkdtemp(prefix="wheels-", dir=parent))
    for wheel in config.lock:
        blob = cache.blob_path(wheel.digest)
        check_wheel(blob, filename=wheel.filename)
        os.symlink(blob, folder / wheel.filename)
    return folder


def extract_uv(cache: Layout, wheel: Wheel) -> Path:
    """Return the ``uv`` binary of ``wheel``, extracted once into ``<cache>/tools/<hex>/uv``."""
    target = cache.root / "tools" / wheel.sha256 / "uv"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    blob = cache.blob_path(wheel.digest)
    check_wheel(blob, filename=wheel.filename)
    with zipfile.ZipFile(blob) as zf:
        members = [n for n in zf.namelist() if n.endswith(".data/scripts/uv")]
        if not members:
            raise InstallError(f"wheel {wheel.filename}: no .data/scripts/uv binary")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".uv-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, zf.open(members[0]) as src:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target
