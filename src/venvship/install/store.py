"""The host's store of unpacked distributions: each ready-to-run layer unpacked once, under the
blob cache, and hard-linked into every generation that holds it (DESIGN §5).

``<cache>/unpacked/<layer hex>/tree/`` holds the files, ``files.json`` each file's RECORD-style
hash, size and mode, computed while the layer streamed from its re-hashed blob. The store
follows the cache's trust rules (root-owned when run as root); a store file is re-hashed before
it is linked again unless its inode's ctime is the one recorded after its last check, which no
write can keep (a hot patch through a generation's link changes it).

Unpacking a layer, and the rules its members must follow, are in :mod:`.unpack`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from .._fsutil import atomic_write, pid_alive
from .._log import logger
from ..artifact.layerformat import LayerInfo
from ..errors import InstallError
from ..oci.layout import Layout
from ..venvformat.record import file_hash_field
from . import cachestore
from .unpack import unpack

FILES = "files.json"
SEEN = "seen.json"


@dataclass(frozen=True)
class Entry:
    """One unpacked layer: its tree, and venv-relative path → (hash field, size, mode) of each file."""

    root: Path
    files: Mapping[str, tuple[str, int, int]]
    folders: tuple[str, ...]

    @property
    def tree(self) -> Path:
        return self.root / "tree"


def store_root(cache: Path) -> Path:
    return cache / "unpacked"


def entry_path(cache: Path, digest: str) -> Path:
    return store_root(cache) / digest.split(":", 1)[1]


def _unpacked(cache: Layout, layer: LayerInfo, *, mtime: int) -> Entry:
    """Return the store entry of ``layer`` made now from its cached blob (re-hashed as it is read)."""
    path = entry_path(cache.root, layer.digest)
    # Named by this process, so that a later run can tell a killed run's leftovers (remove_stale).
    prefix = f".{path.name[:12]}-{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=_mkdir(store_root(cache.root))))
    try:
        files, folders = unpack(cache.blob_path(layer.digest), tmp / "tree", layer=layer, mtime=mtime)
        doc = {"files": files, "folders": folders}
        atomic_write(tmp / FILES, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
        # Every file was hashed as it was written: all of them checked now. Linking changes the
        # ctime of the bytecode only (the rest is copied), which after_linking records again.
        _record_seen(tmp, files)
        # Readable by all, as the generations made from it are: the health check's unprivileged
        # user reads its bytecode when the generation has none of its own (check.py).
        tmp.chmod(0o755)
        try:
            os.rename(tmp, path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent run unpacked it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    entry = load(path)
    if entry is None:
        raise InstallError(f"{path}: unpacked layer {layer.title} is unreadable")
    logger.debug("unpacked %s into the store", layer.title)
    return entry


def _mkdir(path: Path) -> Path:
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    return path


def load(path: Path) -> Entry | None:
    """Return the entry at ``path``, or None if there is none (or it is unreadable)."""
    try:
        doc = json.loads((path / FILES).read_bytes())
        files = {str(k): (str(v[0]), int(v[1]), int(v[2])) for k, v in doc["files"].items()}
        folders = tuple(str(f) for f in doc["folders"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return Entry(root=path, files=files, folders=folders)


# -- checking and linking ---------------------------------------------------------------------------


def _seen(root: Path) -> dict[str, list[int]]:
    try:
        data = json.loads((root / SEEN).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _still_checked(entry: Entry, seen: Mapping[str, list[int]], paths: Iterable[str]) -> set[str]:
    """Return the ``paths`` of ``entry`` whose inode and ctime are those recorded after their last check."""
    good = set()
    tree = os.fspath(entry.tree)
    for rel in paths:
        try:
            st = os.lstat(os.path.join(tree, rel))
        except OSError:
            continue
        if seen.get(rel) == [st.st_ino, st.st_ctime_ns] and stat.S_ISREG(st.st_mode):
            good.add(rel)
    return good


@contextlib.contextmanager
def unlinking(cache: Path, digests: Iterable[str]) -> Iterator[None]:
    """Around removing generations that hold links to these layers' entries: the files that were
    checked before stay checked after (an unlink changes a file's ctime, not its content). Only
    bytecode is linked into generations, so only its ctimes change."""
    before = []
    for digest in set(digests):
        entry = load(entry_path(cache, digest)) if digest.startswith("sha256:") else None
        if entry is not None:
            seen = _seen(entry.root)
            before.append((entry, seen, _still_checked(entry, seen, filter(is_pyc, entry.files))))
    yield
    for entry, seen, good in before:
        if good:
            _record_seen(entry.root, good, base=seen)


def _record_seen(root: Path, files: Iterable[str], *, base: Mapping[str, list[int]] | None = None) -> None:
    """Record the (inode, ctime) of each of ``files`` of the entry at ``root``, as it is now
    (checked); the other records of ``base`` are kept."""
    seen = dict(base or {})
    tree = os.path.join(root, "tree")
    for rel in files:
        try:
            st = os.lstat(os.path.join(tree, rel))
        except OSError:
            continue
        seen[rel] = [st.st_ino, st.st_ctime_ns]
    # A hint, not state: no fsync (a torn file only means the next run hashes those files again).
    tmp = root / f".{SEEN}.{os.getpid()}.tmp"
    tmp.write_bytes(json.dumps(seen, separators=(",", ":")).encode())
    os.replace(tmp, root / SEEN)


def unchanged(entry: Entry, paths: Iterable[str]) -> list[str]:
    """Return the ``paths`` of ``entry`` that no longer hash to what it recorded.

    A file whose inode and ctime are those recorded after its last check is not read again.
    """
    seen = _seen(entry.root)
    tree = os.fspath(entry.tree)
    todo = []
    for rel in paths:
        try:
            st = os.lstat(os.path.join(tree, rel))
        except OSError:
            todo.append(rel)
            continue
        known = seen.get(rel)
        if not (
            known == [st.st_ino, st.st_ctime_ns]
            and stat.S_ISREG(st.st_mode)
            and st.st_size == entry.files[rel][1]
        ):
            todo.append(rel)

    def bad(rel: str) -> bool:
        try:
            return file_hash_field(entry.tree / rel) != entry.files[rel][0]
        except OSError:
            return True

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        flags = list(pool.map(bad, todo)) if len(todo) > 64 else [bad(rel) for rel in todo]
    return [rel for rel, flag in zip(todo, flags) if flag]


def checked(cache: Layout, layer: LayerInfo, *, mtime: int) -> Entry:
    """Return the store entry of ``layer``: unpacked now from its blob if the store lacks it, else
    after checking its files; a changed entry is set aside and the layer unpacked again
    (generations keep their own links to the old files).

    Example: ``checked(Layout(Path("/var/cache/venvship")), info, mtime=config.layers.mtime).tree``
    """
    # Installs on this host that share the layer unpack it once; the others wait for that one.
    with cachestore.blob_lock(cache.root, layer.digest, step="unpack"):
        path = entry_path(cache.root, layer.digest)
        entry = load(path)
        if entry is None:
            if os.path.lexists(path):
                discard(path)  # an entry whose file list cannot be read: made again
            return _unpacked(cache, layer, mtime=mtime)
        drifted = unchanged(entry, entry.files)
        if not drifted:
            return entry
        logger.warning(
            "%s: %d stored files changed since they were unpacked (%s); unpacking it again",
            layer.title,
            len(drifted),
            drifted[0],
        )
        discard(entry.root)
        return _unpacked(cache, layer, mtime=mtime)


def discard(root: Path) -> None:
    """Remove a store entry: renamed aside first, so a half-removed entry is never taken for one."""
    doomed = root.with_name(f".{root.name}.doomed-{os.getpid()}")
    try:
        os.rename(root, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def after_linking(entry: Entry, linked: Iterable[str]) -> None:
    """Record the ``linked`` files of ``entry`` as checked again (a hard link changes a file's ctime,
    not its content); the records of its other files are kept."""
    linked = list(linked)
    if linked:
        _record_seen(entry.root, linked, base=_seen(entry.root))


def is_pyc(rel: str) -> bool:
    """Whether the venv-relative ``rel`` is bytecode (the only kind of store file hard-linked)."""
    return rel.endswith(".pyc") and "/__pycache__/" in f"/{rel}"


def remove_stale(cache: Path) -> None:
    """Remove the unfinished unpacks and half-removed entries of processes that are gone (killed)."""
    root = store_root(cache)
    if not root.is_dir():
        return
    for item in root.iterdir():
        if not item.name.startswith("."):
            continue
        pid = item.name.split("-")[-2] if item.name.endswith(".tmp") else item.name.rpartition("-")[2]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        shutil.rmtree(item, ignore_errors=True)


def collect(cache: Path, keep: set[str]) -> list[str]:
    """Remove store entries whose layer digest is not in ``keep`` (and unfinished ones); return them."""
    root = store_root(cache)
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for item in root.iterdir():
        if item.name.startswith("."):
            shutil.rmtree(item, ignore_errors=True)  # unfinished unpacks and half-removed entries
        elif "sha256:" + item.name not in keep:
            discard(item)
            removed.append("sha256:" + item.name)
    return removed
