"""The blob cache's bookkeeping: which destinations reference which blobs, and garbage collection."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from .._fsutil import atomic_write, file_lock
from ..artifact.documents import canonical_json
from ..oci.layout import Layout


def refs_file(cache: Path, dest: Path) -> Path:
    """Return ``<cache>/refs/<hash of dest>.json``, the record of blobs ``dest`` uses."""
    return cache / "refs" / (hashlib.sha256(os.fsencode(dest)).hexdigest()[:16] + ".json")


def record_refs(cache: Path, dest: Path, blobs: Iterable[str]) -> None:
    """Record that the generations of ``dest`` use ``blobs`` (replacing the previous record)."""
    data = {"dest": str(dest), "blobs": sorted(set(blobs))}
    path = refs_file(cache, dest)
    raw = canonical_json(data) + b"\n"
    with contextlib.suppress(OSError):
        if path.read_bytes() == raw:
            return
    atomic_write(path, raw)


def recorded_dests(cache: Path) -> list[tuple[Path, Path, set[str]]]:
    """Return (refs file, destination, blobs) for every destination recorded in ``cache``."""
    out = []
    folder = cache / "refs"
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_bytes())
                out.append((path, Path(data["dest"]), set(data["blobs"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return out


@contextlib.contextmanager
def cache_lock(cache: Path, *, shared: bool, timeout: float | None) -> Iterator[None]:
    """Hold the cache's lock: installs share it, garbage collection takes it alone.

    Raises :class:`~venvship._fsutil.LockTimeout` after ``timeout`` seconds (None: wait).
    """
    with file_lock(cache / ".gc.lock", shared=shared, timeout=timeout):
        yield


@contextlib.contextmanager
def blob_lock(cache: Path, digest: str, *, step: str) -> Iterator[None]:
    """Hold this host's lock on one ``step`` (``pull``, ``unpack``) of blob ``digest``: installs
    that share the cache do it once, the others wait for that one and find it done.

    Per blob, not per cache: installs of other blobs go on meanwhile. The lock files live in
    ``<cache>/locks`` until garbage collection (which no install runs beside) removes them.

    Example: ``with blob_lock(Path("/var/cache/venvship"), digest, step="pull"): source.fetch_blob(…)``
    """
    with file_lock(cache / "locks" / f"{digest.split(':', 1)[-1]}.{step}"):
        yield


def collect_garbage(cache: Layout, keep: set[str]) -> list[str]:
    """Remove cache blobs not in ``keep``; drop refs naming them."""
    removed = [d for d in cache.blob_digests() if d not in keep]
    gone = set(removed)
    stale = [name for name, desc in cache.refs().items() if desc.digest in gone]
    if stale:
        cache.remove_refs(stale)
    for digest in removed:
        cache.remove_blob(digest)
    # Tool folders an earlier venv-pull extracted here: tools now run from private copies.
    shutil.rmtree(cache.root / "tools", ignore_errors=True)
    shutil.rmtree(cache.root / "locks", ignore_errors=True)  # held only under the shared lock
    return removed
