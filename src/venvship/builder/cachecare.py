"""The build cache seen and pruned: what each part holds, and what no recent build uses.

Every build holds the cache lock shared (:func:`using_cache`) for as long as it reads or writes
the cache; pruning takes it alone, so it never removes what a running build holds. What is
pruned, while no build runs:

- ``work/``: scratch folders of builds that were killed (a finished build removes its own);
- ``builders/``: builder venvs not used for ``days`` (each use touches its marker) and unfinished ones;
- ``wheels/``, ``layers/``, ``resolutions/``, ``state/``: entries not used for ``days`` (each
  use touches them); the next build that needs one makes it again;
- ``staging/`` (registry builds' layout): blobs that no tag of it reaches any more, and the
  temp files of killed downloads.

With ``days=0`` everything goes but the locks, the staging layout included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .._fsutil import LockTimeout, file_lock
from ..errors import VenvshipError
from ..oci.layout import Layout

_LOCK = ("locks", "cache.lock")
# The cache's parts, in the order they are shown: folder, what it holds.
PARTS = (
    ("builders", "builder venvs"),
    ("wheels", "wheels"),
    ("layers", "ready-to-run layers"),
    ("staging", "staging layout of registry builds"),
    ("resolutions", "resolutions"),
    ("state", "last build of each recipe"),
    ("work", "leftovers of killed builds"),
)
DAY = 86400.0


@contextlib.contextmanager
def using_cache(cache: Path) -> Iterator[None]:
    """Hold the cache lock shared while a build uses ``cache``: pruning waits for no one, it gives up."""
    with file_lock(cache.joinpath(*_LOCK), shared=True):
        yield


@dataclass(frozen=True)
class Part:
    """One part of the build cache: its folder, what it holds, how many entries and bytes."""

    name: str
    what: str
    path: Path
    entries: int
    size: int

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "what": self.what,
            "path": str(self.path),
            "entries": self.entries,
            "size": self.size,
        }


@dataclass(frozen=True)
class Usage:
    """The build cache at ``path``, part by part."""

    path: Path
    parts: tuple[Part, ...]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def to_json(self) -> dict[str, object]:
        return {"cache": str(self.path), "size": self.size, "parts": [p.to_json() for p in self.parts]}


@dataclass(frozen=True)
class Pruned:
    """What pruning removed: each entry's path, and the bytes freed."""

    path: Path
    removed: tuple[str, ...]
    freed: int

    def to_json(self) -> dict[str, object]:
        return {"cache": str(self.path), "removed": list(self.removed), "freed": self.freed}


def usage(cache: Path) -> Usage:
    """Return what each part of the build cache holds.

    Example: ``usage(default_cache()).size``
    """
    return Usage(
        path=cache,
        parts=tuple(
            Part(
                name=name,
                what=what,
                path=cache / name,
                entries=len(_entries(cache, name)),
                size=_size(cache / name),
            )
            for name, what in PARTS
        ),
    )


def prune(cache: Path, *, days: float) -> Pruned:
    """Remove what no build used for ``days`` (0: everything but the locks); raise if a build holds the cache.

    Example: ``prune(default_cache(), days=30).freed``
    """
    if not cache.is_dir():
        return Pruned(path=cache, removed=(), freed=0)
    try:
        with file_lock(cache.joinpath(*_LOCK), timeout=0):
            return _prune(cache, before=time.time() - days * DAY, everything=days == 0)
    except LockTimeout as exc:
        raise VenvshipError(
            f"{cache}: a build is using this cache ({exc}); prune it once the build is done"
        ) from exc


def _prune(cache: Path, *, before: float, everything: bool) -> Pruned:
    removed: list[str] = []
    freed = 0

    def drop(path: Path) -> None:
        nonlocal freed
        freed += _size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(str(path))

    for entry in _entries(cache, "work"):
        drop(entry)
    for entry in _entries(cache, "builders"):
        if entry.is_dir():
            marker = entry / "venvship-builder.json"
            if not marker.is_file() or _mtime(marker) < before:
                drop(entry)
                with contextlib.suppress(FileNotFoundError):
                    entry.with_name(f"{entry.name}.lock").unlink()
    for name in ("wheels", "layers", "resolutions", "state"):
        for entry in _entries(cache, name):
            if _newest(entry) < before:
                drop(entry)
                if entry.name.endswith(".tar.gz"):  # a layer's metadata goes with it
                    with contextlib.suppress(FileNotFoundError):
                        drop(_layer_meta(entry))
    staging = cache / "staging"
    if everything and staging.exists():
        drop(staging)
    elif (staging / "oci-layout").is_file():
        layout = Layout(staging)
        keep = _reachable(layout)
        for digest in list(layout.blob_digests()):
            if digest not in keep:
                drop(layout.blob_path(digest))
        removed += [str(staging / "blobs" / "sha256" / n) for n in layout.remove_stale_temp()]
    return Pruned(path=cache, removed=tuple(removed), freed=freed)


def _entries(cache: Path, name: str) -> list[Path]:
    """Return the entries pruning weighs one by one in part ``name`` (for the staging layout: its blobs)."""
    folder = cache / name
    if name == "wheels":
        return [p for sub in ("sha256", "sources") for p in _children(folder / sub)]
    if name == "layers":
        blobs = [p for p in _children(folder) if p.name.endswith(".tar.gz")]
        paired = {_layer_meta(b) for b in blobs}
        return blobs + [p for p in _children(folder) if p.suffix == ".json" and p not in paired]
    if name == "state":
        return [p for sub in _children(folder) for p in _children(sub)]
    if name == "staging":
        return _children(folder / "blobs" / "sha256")
    if name == "builders":
        return [p for p in _children(folder) if p.is_dir()]
    return _children(folder)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def _newest(path: Path) -> float:
    """Return when ``path`` was last used: its mtime, or its newest file's for a folder."""
    if path.is_dir() and not path.is_symlink():
        return max((_mtime(p) for p in path.rglob("*")), default=_mtime(path))
    if path.name.endswith(".tar.gz"):  # a layer: its blob and its metadata go together
        return max(_mtime(path), _mtime(_layer_meta(path)))
    return _mtime(path)


def _layer_meta(blob: Path) -> Path:
    return blob.with_name(blob.name[: -len(".tar.gz")] + ".json")


def _size(path: Path) -> int:
    """Return the bytes ``path`` takes (a folder: every file in it, symlinks not followed)."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
    except FileNotFoundError:
        return 0
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def _reachable(layout: Layout) -> set[str]:
    """Return the digests the layout's tags reach: indexes, manifests, configs, layers, referrers."""
    todo = [d.digest for d in layout.entries()]  # each an index or a manifest
    seen: set[str] = set()
    while todo:
        digest = todo.pop()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            doc = json.loads(layout.read_blob(digest))
        except (OSError, ValueError, VenvshipError):
            continue  # missing or not JSON: nothing below it to keep
        if not isinstance(doc, dict):
            continue
        below = [d for d in (doc.get("config"), *doc.get("layers", ())) if isinstance(d, dict)]
        seen.update(d["digest"] for d in below if isinstance(d.get("digest"), str))
        todo += [
            d["digest"]
            for d in doc.get("manifests", ())
            if isinstance(d, dict) and isinstance(d.get("digest"), str)
        ]
    return seen
