"""Unpack one ready-to-run layer from its cached blob into a new folder of the store, hashing the
blob again as it streams.

Layer members are refused before anything is written when they are not plain paths inside the
venv (absolute, ``..``, the venv's own skeleton), not regular files or directories (links,
devices, FIFOs), duplicated, or more than the layer's size can honestly unpack to: every file
and folder, named or made as a parent, counts against that bound (:data:`MEMBER_COST` each), so
a layer of empty folders is as bounded as one of files, and checked in time linear in its size.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import posixpath
import queue
import tarfile
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, BinaryIO, Iterable, Iterator, Sequence, cast

from ..artifact.jsondoc import sha256_digest
from ..artifact.layerformat import MAX_MEMBERS, LayerInfo, check_member
from ..errors import ArtifactError, InstallError

_CHUNK = 1 << 20
# A layer that unpacks to less than this is unpacked from memory (no per-read overhead); a larger one
# is streamed: this bounds what unpacking holds in memory.
_IN_MEMORY = 4 << 20
_QUEUED = 4  # chunks a streamed layer's inflating thread may run ahead of its reader
# What one file or folder costs against a layer's unpack bound besides its bytes: about the block
# and inode it takes on disk, so that empty folders cannot fill the disk for free.
MEMBER_COST = 4096


class _Whole:
    """A small layer's whole tar, its blob checked."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class Inflating:
    """One layer's tar as a thread of :class:`Ahead` reads, hashes and inflates its cached blob
    (the cache is trusted, its content still checked): the whole tar, once the blob hashed to its
    digest, for a layer small enough to unpack from memory; else a stream of chunks at most
    :data:`_QUEUED` ahead of its reader, the blob's hash checked by :meth:`finish`."""

    def __init__(self, blob: Path, layer: LayerInfo) -> None:
        self.blob, self.layer = blob, layer
        self.where = f"layer {layer.title} ({layer.digest})"
        self.limit = 64 * max(layer.size, 1 << 20)  # what gzip can honestly inflate to, and then some
        self._queue: queue.Queue[bytes | _Whole | BaseException | None] = queue.Queue(maxsize=_QUEUED)
        self._gone = threading.Event()
        self._buf, self._pos, self._ended = b"", 0, False

    # -- the inflating thread's side

    def produce(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # raised to the reader, in its thread
            self._give(exc)

    def _give(self, item: bytes | _Whole | BaseException | None) -> bool:
        """Queue ``item``; False once the reader is gone (nothing more to make)."""
        while not self._gone.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            fd = os.open(self.blob, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise InstallError(f"{self.where}: the blob is not in the cache ({self.blob})") from exc
        with open(fd, "rb") as fh:
            # Both sizes small: a trailer (the attacker's word) never gets a large blob read whole.
            if self.layer.size <= _IN_MEMORY and _unpacked_size(fh) <= _IN_MEMORY:
                self._give(_Whole(self._small(fh.read())))
                return
            sha, count, made = hashlib.sha256(), 0, 0
            inflater = zlib.decompressobj(wbits=31)
            try:
                while chunk := fh.read(_CHUNK):
                    if self._gone.is_set():  # even a stretch that inflates to nothing ends here
                        return
                    sha.update(chunk)
                    count += len(chunk)
                    while chunk and not inflater.eof:
                        piece = inflater.decompress(chunk, _CHUNK)
                        chunk = inflater.unconsumed_tail
                        made += len(piece)
                        # Bounded as inflated, not per member: tarfile reads a pax or GNU long-name
                        # header whole, into memory, before a member is seen.
                        if made > self.limit:
                            raise ArtifactError(f"{self.where}: unpacks to more than {self.limit} bytes")
                        if piece and not self._give(piece):
                            return
                    if inflater.eof and (chunk or inflater.unused_data):
                        raise ArtifactError(f"{self.where}: not one gzip stream")
            except zlib.error as exc:
                raise ArtifactError(f"{self.where}: not a valid tar+gzip layer ({exc})") from exc
            self._check_blob("sha256:" + sha.hexdigest(), count)
            if not inflater.eof:
                raise ArtifactError(
                    f"{self.where}: not a valid tar+gzip layer (it ends inside its gzip stream)"
                )
            self._give(None)

    def _check_blob(self, got: str, size: int) -> None:
        if got != self.layer.digest or size != self.layer.size:
            raise ArtifactError(f"{self.where}: the cached blob hashes to {got}, not to its digest")

    def _small(self, raw: bytes) -> bytes:
        self._check_blob(sha256_digest(raw), len(raw))
        inflater = zlib.decompressobj(wbits=31)
        try:
            data = inflater.decompress(raw, _IN_MEMORY + 1)
        except zlib.error as exc:
            raise ArtifactError(f"{self.where}: not a valid tar+gzip layer ({exc})") from exc
        if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
            raise ArtifactError(f"{self.where}: not one gzip stream of the size its trailer gives")
        return data

    # -- the reader's side

    def _get(self) -> bytes | _Whole | None:
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        return item

    def whole(self) -> bytes | None:
        """Return the whole tar of a small layer, or None: read the stream."""
        item = self._get()
        if isinstance(item, _Whole):
            self._ended = True
            return item.data
        self._buf, self._ended = item or b"", item is None
        return None

    def read(self, n: int = -1) -> bytes:
        while self._pos >= len(self._buf):
            item = None if self._ended else self._get()
            if not isinstance(item, bytes):
                self._ended = True
                return b""
            self._buf, self._pos = item, 0
        end = len(self._buf) if n < 0 else self._pos + n
        out = self._buf[self._pos : end]
        self._pos += len(out)
        return out

    def finish(self) -> None:
        """Read what the tar reader left (padding, the gzip trailer); raise if the blob did not hash
        to its digest."""
        while self.read(_CHUNK):
            pass

    def close(self) -> None:
        """The reader is done: the thread stops making this layer."""
        self._gone.set()


class Ahead:
    """Inflates the layers ``blobs`` (in the order they are unpacked) in a thread of its own, the
    next one while the caller writes one's files: unpacking layers in threads of their own is
    slower (writing files takes the GIL all the time), but reading, hashing and inflating let go
    of it. One layer ahead, so that at most two small layers' tars sit in memory."""

    def __init__(self, blobs: Sequence[tuple[Path, LayerInfo]]) -> None:
        self._todo = list(reversed(blobs))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inflate")
        self._made: dict[str, Inflating] = {}
        self._taken: Inflating | None = None

    def _next(self) -> None:
        if self._todo:
            blob, layer = self._todo.pop()
            made = self._made[layer.digest] = Inflating(blob, layer)
            self._pool.submit(made.produce)

    def take(self, layer: LayerInfo) -> Inflating | None:
        """Return ``layer``'s tar in the making (None: not one of ``blobs``), and start on the next.
        The one taken before is done with (unused if the store had it by then)."""
        if self._taken is not None:
            self._taken.close()
        made = self._taken = self._made.pop(layer.digest, None)
        if made is not None:
            self._next()
        return made

    def __enter__(self) -> Ahead:
        self._next()
        return self

    def __exit__(self, *exc: object) -> None:
        for made in [*self._made.values(), *([self._taken] if self._taken else [])]:
            made.close()
        self._pool.shutdown(wait=True, cancel_futures=True)


def unpack(
    blob: Path, tree: Path, *, layer: LayerInfo, mtime: int, inflated: Inflating | None = None
) -> tuple[dict[str, list[object]], list[str]]:
    """Unpack the layer at ``blob`` into ``tree`` (new); return its files and folders. Raises
    ArtifactError for a member a layer may not hold, or a blob that does not hash to its digest.

    ``inflated``: the layer's tar in the making (:meth:`Ahead.take`); else it is made now."""
    if inflated is None:
        with Ahead([(blob, layer)]) as ahead:
            return unpack(blob, tree, layer=layer, mtime=mtime, inflated=ahead.take(layer))
    data = inflated.whole()
    tree.mkdir(mode=0o755)
    writer = _Writer(tree, where=inflated.where, mtime=mtime, limit=inflated.limit)
    if data is not None:
        return writer.from_buffer(data)
    result = writer.from_stream(cast(BinaryIO, inflated))  # what tarfile reads of it: read()
    inflated.finish()
    return result


def _unpacked_size(fh: BinaryIO) -> int:
    """Return what a gzip blob says it inflates to (its trailer's ISIZE): a hint, enforced later."""
    try:
        fh.seek(-4, os.SEEK_END)
    except OSError:
        return 1 << 62  # shorter than a trailer: the stream path says what is wrong with it
    size = int.from_bytes(fh.read(4), "little")
    fh.seek(0)
    return size


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

    def from_buffer(self, data: bytes) -> tuple[dict[str, list[object]], list[str]]:
        view = memoryview(data)
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                for member in self._checked(tar):
                    if member.isreg():
                        self._file(member, (view[member.offset_data : member.offset_data + member.size],))
        except tarfile.TarError as exc:
            raise ArtifactError(f"{self.where}: not a valid tar layer ({exc})") from exc
        return self.files, sorted(self.folders)

    def from_stream(self, stream: BinaryIO) -> tuple[dict[str, list[object]], list[str]]:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in self._checked(tar):
                    if member.isreg():
                        source = tar.extractfile(member)
                        assert source is not None
                        self._file(member, _pieces(source, member.size))
        except (tarfile.TarError, EOFError) as exc:
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

    def _file(self, member: tarfile.TarInfo, pieces: Iterable[bytes | memoryview]) -> None:
        """Write ``member`` from ``pieces`` of its bytes: a large file never sits whole in memory."""
        name = member.name
        self._folder(posixpath.dirname(name))
        mode = 0o755 if member.mode & 0o111 else 0o644
        path = os.path.join(self.tree, name)
        sha, written = hashlib.sha256(), 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            for piece in pieces:
                _write_all(fd, piece)
                sha.update(piece)
                written += len(piece)
            # The recorded mode, whatever the umask or a default ACL of the cache's folders made of
            # it: the store refuses a file whose mode is not the one recorded (store.py).
            os.fchmod(fd, mode)
            if name.endswith(".py"):
                os.utime(fd, (self.mtime, self.mtime))
        finally:
            os.close(fd)
        if written != member.size:  # the tree is the caller's temporary folder: nothing is kept
            raise ArtifactError(f"{self.where}: the layer ends inside {name!r}")
        field = "sha256=" + base64.urlsafe_b64encode(sha.digest()).rstrip(b"=").decode()
        self.files[name] = [field, member.size, mode]


def _pieces(source: IO[bytes], size: int) -> Iterator[bytes]:
    """Yield the ``size`` bytes of ``source`` a chunk at a time (fewer if it ends early)."""
    left = size
    while left:
        piece = source.read(min(_CHUNK, left))
        if not piece:
            return
        left -= len(piece)
        yield piece


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
