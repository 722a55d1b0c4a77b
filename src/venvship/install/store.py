"""The host's store of unpacked distributions: each ready-to-run layer unpacked once, under the
blob cache, and hard-linked into every generation that holds it (DESIGN §5).

``<cache>/unpacked/<layer hex>/tree/`` holds the files, ``files.json`` each file's RECORD-style
hash, size and mode, computed while the layer streamed from its re-hashed blob. The store
follows the cache's trust rules (root-owned when run as root); a store file is re-hashed before
it is linked again unless its inode's ctime is the one recorded after its last check, which no
write can keep (a hot patch through a generation's link changes it).

Layer members are refused before anything is written when they are not plain paths inside the
venv (absolute, ``..``, the venv's own skeleton), not regular files or directories (links,
devices, FIFOs), duplicated, or more than the layer's size can honestly unpack to.
"""

from __future__ import annotations

import base64
import errno
import gzip
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping, cast

from .._fsutil import atomic_write
from .._log import logger
from ..errors import ArtifactError, InstallError
from ..layerformat import MAX_MEMBERS, LayerInfo, check_member
from ..oci.layout import Layout
from .record import file_hash_field

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


def ensure(cache: Layout, layer: LayerInfo, *, mtime: int) -> Entry:
    """Return the store entry of ``layer``, unpacking its cached blob (re-hashed as it streams) if needed.

    Example: ``ensure(Layout(Path("/var/cache/venvship")), info, mtime=config.layers.mtime).tree``
    """
    path = entry_path(cache.root, layer.digest)
    entry = load(path)
    if entry is not None:
        return entry
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{path.name[:12]}-", suffix=".tmp", dir=_mkdir(store_root(cache.root)))
    )
    try:
        files, folders = _unpack(cache.blob_path(layer.digest), tmp / "tree", layer=layer, mtime=mtime)
        doc = {"files": files, "folders": folders}
        atomic_write(tmp / FILES, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
        _record_seen(tmp, files)
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


def _unpack(
    blob: Path, tree: Path, *, layer: LayerInfo, mtime: int
) -> tuple[dict[str, list[object]], list[str]]:
    """Unpack the layer at ``blob`` into ``tree`` (new); return its files and folders. Raises
    ArtifactError for a member a layer may not hold, or a blob that does not hash to its digest."""
    where = f"layer {layer.title} ({layer.digest})"
    limit = 64 * max(layer.size, 1 << 20)  # what gzip can honestly inflate to, and then some
    files: dict[str, list[object]] = {}
    folders: list[str] = []
    total = 0
    tree.mkdir(mode=0o755)
    try:
        with open(blob, "rb") as raw:
            hashing = _Hashing(raw)
            gz = gzip.GzipFile(fileobj=cast(BinaryIO, hashing), mode="rb")
            with gz, tarfile.open(fileobj=gz, mode="r|") as tar:
                for n, member in enumerate(tar):
                    if n >= MAX_MEMBERS:
                        raise ArtifactError(f"{where}: more than {MAX_MEMBERS} members")
                    name = check_member(member.name, where=where)
                    if name in files or (member.isdir() and name in folders):
                        raise ArtifactError(f"{where}: {name!r} appears twice")
                    target = tree / name
                    if member.isdir():
                        target.mkdir(mode=0o755, parents=True, exist_ok=True)
                        folders.append(name)
                        continue
                    if not member.isreg():
                        raise ArtifactError(f"{where}: {name!r} is not a regular file or folder")
                    total += member.size
                    if total > limit:
                        raise ArtifactError(f"{where}: unpacks to more than {limit} bytes")
                    mode = 0o755 if member.mode & 0o111 else 0o644
                    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None
                    files[name] = [
                        _write(cast(BinaryIO, source), target, mode=mode, size=member.size),
                        member.size,
                        mode,
                    ]
                    os.utime(target, (mtime, mtime))
            # The rest of the stream (tar padding, gzip trailer) goes through the hash too.
            while hashing.read(_CHUNK):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArtifactError(f"{where}: not a valid tar+gzip layer ({exc})") from exc
    except FileNotFoundError as exc:
        raise InstallError(f"{where}: the blob is not in the cache ({blob})") from exc
    got = "sha256:" + hashing.sha.hexdigest()
    if got != layer.digest or hashing.count != layer.size:
        raise ArtifactError(f"{where}: the cached blob hashes to {got}, not to its digest")
    return files, sorted(folders)


def _write(source: BinaryIO, target: Path, *, mode: int, size: int) -> str:
    """Write exactly ``size`` bytes of ``source`` to the new file ``target``; return their hash field."""
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        left = size
        while left:
            chunk = source.read(min(left, _CHUNK))
            if not chunk:
                raise ArtifactError(f"{target.name}: the layer ends inside this file")
            digest.update(chunk)
            _write_all(fd, chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    os.chmod(target, mode)  # the umask may have taken bits off
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- checking and linking ---------------------------------------------------------------------------


def _record_seen(root: Path, files: Iterable[str]) -> None:
    """Record the (inode, ctime) of each file of the entry at ``root``, as it is now (checked)."""
    seen = {}
    tree = root / "tree"
    for rel in files:
        try:
            st = os.lstat(tree / rel)
        except OSError:
            continue
        seen[rel] = [st.st_ino, st.st_ctime_ns]
    atomic_write(root / SEEN, json.dumps(seen, separators=(",", ":")).encode())


def unchanged(entry: Entry, paths: Iterable[str]) -> list[str]:
    """Return the ``paths`` of ``entry`` that no longer hash to what it recorded.

    A file whose inode and ctime are those recorded after its last check is not read again.
    """
    try:
        seen = json.loads((entry.root / SEEN).read_bytes())
    except (OSError, ValueError):
        seen = {}
    todo = []
    for rel in paths:
        try:
            st = os.lstat(entry.tree / rel)
        except OSError:
            todo.append(rel)
            continue
        known = seen.get(rel) if isinstance(seen, dict) else None
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
    """Return the store entry of ``layer`` after checking its files; a changed entry is set aside and
    the layer unpacked again from its blob (generations keep their own links to the old files)."""
    entry = ensure(cache, layer, mtime=mtime)
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
    return ensure(cache, layer, mtime=mtime)


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
