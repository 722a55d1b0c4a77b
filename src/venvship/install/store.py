"""The host's store of unpacked distributions: each ready-to-run layer unpacked once, under the
blob cache, and hard-linked into every generation that holds it (DESIGN §5).

``<cache>/unpacked/<layer hex>/tree/`` holds the files, ``files.json`` each file's RECORD-style
hash, size and mode, computed while the layer streamed from its re-hashed blob. The store
follows the cache's trust rules (root-owned when run as root); a store file is re-hashed before
it is linked or copied again unless it is a regular file of its recorded size and mode, owned by
this user, and its stamp (``seen.json``: inode, ctime, link count, mtime) is the one taken after
its last check: no write can keep a ctime older than the clock's current tick (a hot patch
through a generation's link changes it). A hard link made or removed since (a generation that
links the same bytecode, or one pruned) changes only the ctime and the link count: a stamp whose
inode and mtime still hold then vouches too. Bytecode, the only kind hard-linked, is checked
before it is linked; the rest as it is copied, on the descriptor the copy reads.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

from .._fsutil import atomic_write, pid_alive
from .._log import logger
from ..artifact.layerformat import LayerInfo
from ..errors import InstallError
from ..oci.layout import Layout
from ..venvformat.record import fd_matches
from . import cachestore
from .unpack import Inflating, unpack

FILES = "files.json"
SEEN = "seen.json"


class Drifted(InstallError):
    """A store file read while it was being linked no longer hashes to what its entry recorded."""


@dataclass(frozen=True)
class Entry:
    """One unpacked layer: its tree, venv-relative path → (hash field, size, mode) of each file, and
    path → stamp (:func:`stamp`) of the files as they were after their last check (``seen.json``)."""

    root: Path
    files: Mapping[str, tuple[str, int, int]]
    folders: tuple[str, ...]
    seen: Mapping[str, list[int]] = field(default_factory=dict)

    @property
    def tree(self) -> Path:
        return self.root / "tree"


def store_root(cache: Path) -> Path:
    return cache / "unpacked"


def entry_path(cache: Path, digest: str) -> Path:
    return store_root(cache) / digest.split(":", 1)[1]


def _unpacked(cache: Layout, layer: LayerInfo, *, mtime: int, inflated: Inflating | None = None) -> Entry:
    """Return the store entry of ``layer`` made now from its cached blob (re-hashed as it is read)."""
    path = entry_path(cache.root, layer.digest)
    # Named by this process, so that a later run can tell a killed run's leftovers (remove_stale).
    prefix = f".{path.name[:12]}-{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=_mkdir(store_root(cache.root))))
    try:
        blob = cache.blob_path(layer.digest)
        files, folders = unpack(blob, tmp / "tree", layer=layer, mtime=mtime, inflated=inflated)
        doc = {"files": files, "folders": folders}
        atomic_write(tmp / FILES, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
        # Every file was hashed as it was written: all of them checked now. Linking changes the
        # ctime of the bytecode only (the rest is copied), which after_linking records again.
        stamps = _stamps(os.path.join(tmp, "tree"), files)
        _record_seen(tmp, stamps, base={})
        # Readable by all, as the generations made from it are: the health check's unprivileged
        # user reads its bytecode when the generation has none of its own (check.py).
        tmp.chmod(0o755)
        try:
            os.rename(tmp, path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent run unpacked it first
            stamps = {}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    entry = load(path)
    if entry is None:
        raise InstallError(f"{path}: unpacked layer {layer.title} is unreadable")
    logger.debug("unpacked %s into the store", layer.title)
    # Checked now, this process knows, even the stamps too recent to record (_record_seen).
    return replace(entry, seen={**entry.seen, **stamps})


def _mkdir(path: Path) -> Path:
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    return path


def is_entry(cache: Path, digest: str) -> bool:
    """Whether the store has an entry for the layer ``digest`` (its file list at least)."""
    return os.path.isfile(os.path.join(entry_path(cache, digest), FILES))


def load(path: Path) -> Entry | None:
    """Return the entry at ``path``, or None if there is none (or it is unreadable)."""
    try:
        doc = json.loads((path / FILES).read_bytes())
        files = {str(k): (str(v[0]), int(v[1]), int(v[2])) for k, v in doc["files"].items()}
        folders = tuple(str(f) for f in doc["folders"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return Entry(root=path, files=files, folders=folders, seen=_seen(path))


# -- checking and linking ---------------------------------------------------------------------------


def _seen(root: Path) -> dict[str, list[int]]:
    try:
        data = json.loads((root / SEEN).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def stamp(st: os.stat_result) -> list[int]:
    """A store file's stamp: [inode, ctime, link count, mtime]; no write keeps its ctime (but see
    _record_seen), and none keeps its mtime unless it sets the mtime back on purpose."""
    return [st.st_ino, st.st_ctime_ns, st.st_nlink, st.st_mtime_ns]


def _record_seen(root: str | Path, found: Mapping[str, list[int]], *, base: Mapping[str, list[int]]) -> None:
    """Record ``found`` (path → stamp of a file of the entry at ``root`` when it was checked) over
    ``base``. A stamp whose ctime is not older than the file system's clock now is left out (that
    file is hashed again next time): a write within the same tick of a coarse clock keeps the
    ctime, as git's index knows ("racy clean")."""
    tmp = os.path.join(root, f".{SEEN}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        return  # the entry was discarded meanwhile (renewed by another install): nothing to record
    with os.fdopen(fd, "wb") as fh:
        now = os.fstat(fd).st_ctime_ns  # a new file's ctime: the file system's clock
        seen = dict(base)
        for rel, known in found.items():
            if known[1] < now:
                seen[rel] = known
            else:
                seen.pop(rel, None)
        # A hint, not state: no fsync (a torn file only means the next run hashes those files again).
        fh.write(json.dumps(seen, separators=(",", ":")).encode())
    with contextlib.suppress(FileNotFoundError):
        os.replace(tmp, os.path.join(root, SEEN))


def _stamps(tree: str, paths: Iterable[str]) -> dict[str, list[int]]:
    found = {}
    for rel in paths:
        with contextlib.suppress(OSError):
            found[rel] = stamp(os.lstat(os.path.join(tree, rel)))
    return found


def hashed(entry: Entry, rel: str) -> list[int] | None:
    """Return the stamp of file ``rel`` of ``entry`` taken before it was read, if it hashes to its
    record (else None)."""
    try:
        fd = os.open(
            os.path.join(entry.tree, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        )
    except OSError:
        return None
    try:
        return _matching(entry, rel, fd, os.fstat(fd))
    finally:
        os.close(fd)


def _matching(entry: Entry, rel: str, fd: int, st: os.stat_result) -> list[int] | None:
    """Return ``st``'s stamp if the open file ``fd`` is the file ``rel`` of ``entry`` as recorded
    (:func:`_as_recorded`) and hashes to its record (read through a duplicate of ``fd``, from where
    it is), else None."""
    if not _as_recorded(entry, rel, st):
        return None
    with os.fdopen(os.dup(fd), "rb") as fh:
        return stamp(st) if fd_matches(fh, entry.files[rel][0]) else None


def _as_recorded(entry: Entry, rel: str, st: os.stat_result) -> bool:
    """Whether ``st`` is a regular file of the size and mode ``entry`` recorded for ``rel``, owned by
    this process's user. Not a folder, a device or a socket; and a hard link shares its mode and
    owner: a stored file another user could write would be theirs in every generation linking it."""
    _, size, mode = entry.files[rel]
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == size
        and stat.S_IMODE(st.st_mode) == mode
        and st.st_uid == os.geteuid()
    )


def _check(entry: Entry, paths: Iterable[str]) -> tuple[list[str], dict[str, list[int]]]:
    """Return the ``paths`` of ``entry`` that no longer hash to what it recorded, and the stamps of
    those that were hashed and still do. A file its record vouches for is not read."""
    tree = os.fspath(entry.tree)
    todo = []
    for rel in paths:
        try:
            st = os.lstat(os.path.join(tree, rel))
        except OSError:
            todo.append(rel)
            continue
        if not vouched(entry, rel, st):
            todo.append(rel)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        stamps = (
            list(pool.map(lambda rel: hashed(entry, rel), todo))
            if len(todo) > 64
            else [hashed(entry, rel) for rel in todo]
        )
    bad = [rel for rel, known in zip(todo, stamps) if known is None]
    return bad, {rel: known for rel, known in zip(todo, stamps) if known is not None}


def vouched(entry: Entry, rel: str, st: os.stat_result) -> bool:
    """Whether the file of ``entry`` at ``rel``, as ``st`` describes it, is the one stamped after its
    last check, as recorded (:func:`_as_recorded`)."""
    known = entry.seen.get(rel)
    if known is None or not _as_recorded(entry, rel, st):
        return False
    now = stamp(st)
    # A hard link made or removed since changes the ctime and the link count only. A write sets
    # the mtime to the clock, past the stamped one (_record_seen); writing and then setting the
    # mtime back changes the ctime alone, so it is hashed unless the link count changed too.
    return known == now or (
        isinstance(known, list)  # seen.json is a hint: whatever else it holds vouches for nothing
        and len(known) == 4
        and (known[0], known[3]) == (now[0], now[3])
        and known[2] != now[2]
    )


def check_open(entry: Entry, rel: str, fd: int, st: os.stat_result) -> list[int] | None:
    """Check the store file ``rel`` of ``entry`` open as ``fd`` (``st`` its fstat) before it is read:
    return None if its record vouches for it, else hash it and return its stamp (``st``'s); raise
    :class:`Drifted` if it no longer hashes to what the entry recorded. Reads through a duplicate
    of ``fd`` (offset at the end after a hash: readers after this one give their own offsets)."""
    if vouched(entry, rel, st):
        return None
    if (known := _matching(entry, rel, fd, st)) is not None:
        return known
    raise Drifted(f"{entry.tree / rel}: changed since it was unpacked")


def checked(
    cache: Layout,
    layer: LayerInfo,
    *,
    mtime: int,
    first: Callable[[str], bool] | None = None,
    inflated: Inflating | None = None,
) -> Entry:
    """Return the store entry of ``layer``: unpacked now from its blob if the store lacks it, else
    after checking its files (only those ``first`` picks, if given: the caller checks the others
    with :func:`check_open` as it reads them); a changed entry is set aside and the layer unpacked
    again (generations keep their own links to the old files). ``inflated``: the layer's tar in
    the making (:class:`.unpack.Ahead`), read if the store lacks the layer.

    Example: ``checked(Layout(Path("/var/cache/venvship")), info, mtime=config.layers.mtime).tree``
    """
    # Installs on this host that share the layer unpack it once; the others wait for that one.
    with cachestore.blob_lock(cache.root, layer.digest, step="unpack"):
        path = entry_path(cache.root, layer.digest)
        entry = load(path)
        if entry is None:
            if os.path.lexists(path):
                discard(path)  # an entry whose file list cannot be read: made again
            return _unpacked(cache, layer, mtime=mtime, inflated=inflated)
        drifted, rehashed = _check(entry, entry.files if first is None else filter(first, entry.files))
        if not drifted:
            if rehashed:
                logger.debug(
                    "%s: %d stored files hashed again (their stamps no longer held)",
                    layer.title,
                    len(rehashed),
                )
                _record_seen(entry.root, rehashed, base=entry.seen)
                entry = replace(entry, seen={**entry.seen, **rehashed})
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


def after_linking(entry: Entry, found: Mapping[str, list[int]]) -> None:
    """Record the files of ``entry`` stamped while they were linked (a hard link changes a file's
    ctime, not its content) or hashed as they were read, each only if it still has that stamp."""
    tree = os.fspath(entry.tree)
    keep = {rel: known for rel, known in _stamps(tree, found).items() if known == found[rel]}
    if keep:
        _record_seen(entry.root, keep, base=_seen(entry.root))


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
