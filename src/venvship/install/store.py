"""The host's store of unpacked distributions: each ready-to-run layer unpacked once, under the
blob cache, and hard-linked into every generation that holds it (DESIGN §5).

``<cache>/unpacked/<layer hex>/tree/`` holds the files, ``files.json`` each file's RECORD-style
hash, size and mode, computed while the layer streamed from its re-hashed blob. The store
follows the cache's trust rules (root-owned when run as root); a store file is re-hashed before
it is linked again unless its inode's ctime is the one recorded after its last check, which no
write can keep (a hot patch through a generation's link changes it).

Layer members are refused before anything is written when they are not plain paths inside the
venv (absolute, ``..``, the venv's own skeleton), not regular files or directories (links,
devices, FIFOs), duplicated, or more than the layer's size can honestly unpack to: every file
and folder, named or made as a parent, counts against that bound (:data:`MEMBER_COST` each), so
a layer of empty folders is as bounded as one of files, and checked in time linear in its size.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import gzip
import hashlib
import io
import json
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Mapping, cast

from .._fsutil import atomic_write, pid_alive
from .._log import logger
from ..artifact.jsondoc import sha256_digest
from ..artifact.layerformat import MAX_MEMBERS, LayerInfo, check_member
from ..errors import ArtifactError, InstallError
from ..oci.layout import Layout
from ..venvformat.record import file_hash_field
from . import cachestore

FILES = "files.json"
SEEN = "seen.json"
_CHUNK = 1 << 20


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


class _Hashing:
    """A read-only stream that hashes and counts what is read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.sha, self.count = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.count += len(data)
        return data


class _Bounded:
    """A read-only stream that raises ArtifactError once more than ``limit`` bytes came through it."""

    def __init__(self, raw: BinaryIO, *, limit: int, where: str) -> None:
        self.raw, self.limit, self.where, self.count = raw, limit, where, 0

    def read(self, n: int = -1) -> bytes:
        left = self.limit + 1 - self.count
        data = self.raw.read(left if n < 0 else min(n, left))
        self.count += len(data)
        if self.count > self.limit:
            raise ArtifactError(f"{self.where}: unpacks to more than {self.limit} bytes")
        return data


def _unpacked(cache: Layout, layer: LayerInfo, *, mtime: int) -> Entry:
    """Return the store entry of ``layer`` made now from its cached blob (re-hashed as it is read)."""
    path = entry_path(cache.root, layer.digest)
    # Named by this process, so that a later run can tell a killed run's leftovers (remove_stale).
    prefix = f".{path.name[:12]}-{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=_mkdir(store_root(cache.root))))
    try:
        files, folders = _unpack(cache.blob_path(layer.digest), tmp / "tree", layer=layer, mtime=mtime)
        doc = {"files": files, "folders": folders}
        atomic_write(tmp / FILES, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
        # No record of checked inodes yet: linking changes every ctime, after_linking records them.
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


# A layer that unpacks to less than this is unpacked from memory (no per-read overhead); a larger one
# is streamed. With UNPACK_WORKERS layers at a time, this bounds what unpacking holds in memory.
_IN_MEMORY = 4 << 20
# What one file or folder costs against a layer's unpack bound besides its bytes: about the block
# and inode it takes on disk, so that empty folders cannot fill the disk for free.
MEMBER_COST = 4096


def _unpack(
    blob: Path, tree: Path, *, layer: LayerInfo, mtime: int
) -> tuple[dict[str, list[object]], list[str]]:
    """Unpack the layer at ``blob`` into ``tree`` (new); return its files and folders. Raises
    ArtifactError for a member a layer may not hold, or a blob that does not hash to its digest."""
    where = f"layer {layer.title} ({layer.digest})"
    limit = 64 * max(layer.size, 1 << 20)  # what gzip can honestly inflate to, and then some
    try:
        # Both sizes small: a trailer (the attacker's word) never gets a large blob read whole.
        small = layer.size <= _IN_MEMORY and _unpacked_size(blob) <= _IN_MEMORY
        raw = blob.read_bytes() if small else None
    except FileNotFoundError as exc:
        raise InstallError(f"{where}: the blob is not in the cache ({blob})") from exc
    if raw is not None:
        # The blob is hashed again as it is read: the cache is trusted, its content still checked.
        got = sha256_digest(raw)
        if got != layer.digest or len(raw) != layer.size:
            raise ArtifactError(f"{where}: the cached blob hashes to {got}, not to its digest")
        inflate = zlib.decompressobj(wbits=31)
        try:
            data = inflate.decompress(raw, _IN_MEMORY + 1)
        except zlib.error as exc:
            raise ArtifactError(f"{where}: not a valid tar+gzip layer ({exc})") from exc
        if inflate.unconsumed_tail or inflate.unused_data or not inflate.eof:
            raise ArtifactError(f"{where}: not one gzip stream of the size its trailer gives")
        tree.mkdir(mode=0o755)
        return _Writer(tree, where=where, mtime=mtime, limit=limit).from_buffer(data)
    tree.mkdir(mode=0o755)
    with open(blob, "rb") as fh:
        hashing = _Hashing(fh)
        writer = _Writer(tree, where=where, mtime=mtime, limit=limit)
        result = writer.from_stream(hashing)
        while hashing.read(_CHUNK):  # the rest (tar padding, gzip trailer) goes through the hash too
            pass
    got = "sha256:" + hashing.sha.hexdigest()
    if got != layer.digest or hashing.count != layer.size:
        raise ArtifactError(f"{where}: the cached blob hashes to {got}, not to its digest")
    return result


def _unpacked_size(blob: Path) -> int:
    """Return what a gzip blob says it inflates to (its trailer's ISIZE): a hint, enforced later."""
    with open(blob, "rb") as fh:
        try:
            fh.seek(-4, os.SEEK_END)
        except OSError:
            return 1 << 62  # shorter than a trailer: the stream path says what is wrong with it
        return int.from_bytes(fh.read(4), "little")


class _Writer:
    """Writes a layer's members under ``tree``: checked, each file new, .py files given the
    layer's mtime (their .pyc headers name it); plain string paths, as this runs per file."""

    def __init__(self, tree: Path, *, where: str, mtime: int, limit: int) -> None:
        self.tree = os.fspath(tree)
        self.where, self.mtime, self.limit = where, mtime, limit
        self.files: dict[str, list[object]] = {}
        self.folders: set[str] = set()  # a set: a list made duplicate checks quadratic
        self.made: set[str] = {""}
        self.total = 0
        # The umask is read once: a mode it would trim is set again after the file is made.
        mask = os.umask(0o022)
        os.umask(mask)
        self.trimmed = bool(mask & 0o755)

    def from_buffer(self, data: bytes) -> tuple[dict[str, list[object]], list[str]]:
        view = memoryview(data)
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                for member in self._checked(tar):
                    if member.isreg():
                        self._file(member, view[member.offset_data : member.offset_data + member.size])
        except tarfile.TarError as exc:
            raise ArtifactError(f"{self.where}: not a valid tar layer ({exc})") from exc
        return self.files, sorted(self.folders)

    def from_stream(self, raw: _Hashing) -> tuple[dict[str, list[object]], list[str]]:
        try:
            gz = gzip.GzipFile(fileobj=cast(BinaryIO, raw), mode="rb")
            # Bounded as inflated, not per member: tarfile reads a pax or GNU long-name header
            # whole, into memory, before a member is seen.
            bounded = cast(BinaryIO, _Bounded(cast(BinaryIO, gz), limit=self.limit, where=self.where))
            with gz, tarfile.open(fileobj=bounded, mode="r|") as tar:
                for member in self._checked(tar):
                    if member.isreg():
                        source = tar.extractfile(member)
                        assert source is not None
                        self._file(member, source.read(member.size))
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ArtifactError(f"{self.where}: not a valid tar+gzip layer ({exc})") from exc
        return self.files, sorted(self.folders)

    def _checked(self, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        for n, member in enumerate(tar):
            if n >= MAX_MEMBERS:
                raise ArtifactError(f"{self.where}: more than {MAX_MEMBERS} members")
            name = check_member(member.name, where=self.where)
            if name in self.files or name in self.folders:
                raise ArtifactError(f"{self.where}: {name!r} appears twice")
            if member.isdir():
                self._folder(name)
                self.folders.add(name)
                continue
            if not member.isreg():
                raise ArtifactError(f"{self.where}: {name!r} is not a regular file or folder")
            self._charge(member.size + MEMBER_COST)
            yield member

    def _charge(self, size: int) -> None:
        self.total += size
        if self.total > self.limit:
            raise ArtifactError(f"{self.where}: unpacks to more than {self.limit} bytes")

    def _folder(self, name: str) -> None:
        """Make folder ``name`` and its missing parents, each charged before it is made."""
        missing = []
        while name not in self.made:
            missing.append(name)
            name = posixpath.dirname(name)
        for folder in reversed(missing):
            self._charge(MEMBER_COST)
            try:
                os.mkdir(os.path.join(self.tree, folder), mode=0o755)
            except (FileExistsError, NotADirectoryError) as exc:
                raise ArtifactError(f"{self.where}: {folder!r} is a file and a folder") from exc
            self.made.add(folder)

    def _file(self, member: tarfile.TarInfo, data: bytes | memoryview) -> None:
        name = member.name
        self._folder(posixpath.dirname(name))
        if len(data) != member.size:
            raise ArtifactError(f"{self.where}: the layer ends inside {name!r}")
        mode = 0o755 if member.mode & 0o111 else 0o644
        path = os.path.join(self.tree, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            _write_all(fd, data)
            if self.trimmed:
                os.fchmod(fd, mode)
            if name.endswith(".py"):
                os.utime(fd, (self.mtime, self.mtime))
        finally:
            os.close(fd)
        field = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.files[name] = [field, member.size, mode]


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- checking and linking ---------------------------------------------------------------------------


def _seen(root: Path) -> dict[str, list[int]]:
    try:
        data = json.loads((root / SEEN).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _still_checked(entry: Entry, seen: Mapping[str, list[int]]) -> set[str]:
    """Return the files of ``entry`` whose inode and ctime are those recorded after their last check."""
    good = set()
    tree = os.fspath(entry.tree)
    for rel in entry.files:
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
    checked before stay checked after (an unlink changes a file's ctime, not its content)."""
    before = []
    for digest in set(digests):
        entry = load(entry_path(cache, digest)) if digest.startswith("sha256:") else None
        if entry is not None:
            seen = _seen(entry.root)
            before.append((entry, seen, _still_checked(entry, seen)))
    yield
    for entry, seen, good in before:
        if good:
            _record_seen(entry.root, good, base=seen)


def _record_seen(root: Path, files: Iterable[str], *, base: Mapping[str, list[int]] | None = None) -> None:
    """Record the (inode, ctime) of each of ``files`` of the entry at ``root``, as it is now
    (checked); the other records of ``base`` are kept."""
    seen = dict(base or {})
    tree = root / "tree"
    for rel in files:
        try:
            st = os.lstat(tree / rel)
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
    todo = []
    for rel in paths:
        try:
            st = os.lstat(entry.tree / rel)
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


def after_linking(entry: Entry) -> None:
    """Record the entry's files as checked again (linking changed their ctime, not their content)."""
    _record_seen(entry.root, entry.files)


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
