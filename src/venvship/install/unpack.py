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
import gzip
import hashlib
import io
import os
import posixpath
import tarfile
import zlib
from pathlib import Path
from typing import IO, BinaryIO, Iterable, Iterator, cast

from ..artifact.jsondoc import sha256_digest
from ..artifact.layerformat import MAX_MEMBERS, LayerInfo, check_member
from ..errors import ArtifactError, InstallError

_CHUNK = 1 << 20


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


# A layer that unpacks to less than this is unpacked from memory (no per-read overhead); a larger one
# is streamed: this bounds what unpacking holds in memory.
_IN_MEMORY = 4 << 20
# What one file or folder costs against a layer's unpack bound besides its bytes: about the block
# and inode it takes on disk, so that empty folders cannot fill the disk for free.
MEMBER_COST = 4096


def unpack(
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
                        self._file(member, _pieces(source, member.size))
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
