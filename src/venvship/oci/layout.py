"""OCI image layout directories: digest-addressed blobs plus ``index.json`` of named refs.

Writers put blobs first and rewrite ``index.json`` last (temp file + rename, under a lock), so a
reader never sees a ref whose blobs are missing. Stdlib only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping

from .._fsutil import atomic_write, file_lock, pid_alive
from ..artifact.documents import INDEX_TYPE, REF_NAME, Descriptor, canonical_json, sha256_digest
from ..artifact.jsondoc import parse_json
from ..errors import ArtifactError
from .reference import is_ref_name
from .referrers import is_referrers_tag

_CHUNK = 1 << 20
_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_TEMP = ".in-"
MAX_INDEX = 64 << 20  # index.json: far more refs than any layout holds
_HINTED = 20  # the refs an error names: one line, however many an index.json holds


def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file; raise ArtifactError otherwise.

    A layout directory may be another user's: a "blob" that is a FIFO would block the open and
    the read for ever (under the install's locks), one that links to /dev/zero would never end.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO's open blocks otherwise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"{path}: not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class Layout:
    """One OCI image layout directory.

    Example: ``Layout.create(Path("build/oci")).resolve("demo:1.0")``
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def create(cls, root: Path) -> Layout:
        """Return the layout at ``root``, creating its skeleton if it does not exist yet."""
        layout = cls(root)
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        if not (root / "oci-layout").exists():
            atomic_write(root / "oci-layout", _LAYOUT)
        if not (root / "index.json").exists():
            with file_lock(root / ".index.lock"):
                if not (root / "index.json").exists():
                    layout._write_index([])
        return layout

    @classmethod
    def open(cls, root: Path) -> Layout:
        """Return the existing layout at ``root`` or raise ArtifactError."""
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise ArtifactError(f"{root}: not an OCI image layout (no oci-layout or index.json)")
        return cls(root)

    # -- blobs -----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
            raise ArtifactError(f"unsupported digest {digest!r}")
        return self.root / "blobs" / "sha256" / hexpart

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def ingest(self, stream: BinaryIO, *, digest: str, size: int, what: str = "") -> bool:
        """Copy ``stream`` into the blob ``digest``, verifying digest and size while streaming.

        Returns False if the blob was already present (nothing read). Bad bytes never land.
        """
        if self.has_blob(digest, size):
            return False
        target = self.blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Named by this process, so that the next run can tell a killed download's file from a
        # running one's (remove_stale_temp).
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{_TEMP}{os.getpid()}-", suffix=".tmp")
        try:
            hasher = hashlib.sha256()
            seen = 0
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    seen += len(chunk)
                    if seen > size:
                        raise ArtifactError(f"{what or digest}: more than the expected {size} bytes")
                    hasher.update(chunk)
                    out.write(chunk)
            if seen != size:
                raise ArtifactError(f"{what or digest}: got {seen} bytes, expected {size}")
            got = "sha256:" + hasher.hexdigest()
            if got != digest:
                raise ArtifactError(f"{what or digest}: digest mismatch, got {got}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return True

    def put_file(self, path: Path, *, digest: str, size: int) -> bool:
        """Store the file at ``path`` as blob ``digest`` (verified); False if already present."""
        with path.open("rb") as fh:
            return self.ingest(fh, digest=digest, size=size, what=str(path))

    def put_bytes(self, data: bytes) -> tuple[str, bool]:
        """Store ``data`` as a blob; return its digest and whether it was newly written."""
        digest = sha256_digest(data)
        if self.has_blob(digest, len(data)):
            return digest, False
        atomic_write(self.blob_path(digest), data)
        return digest, True

    def read_blob(self, digest: str, *, max_size: int = 16 << 20) -> bytes:
        """Return a small blob's bytes (a manifest, index or config), verified against ``digest``."""
        path = self.blob_path(digest)
        try:
            with _open_regular(path) as fh:
                data = fh.read(max_size + 1)  # the size as read, not as a stat before said
        except FileNotFoundError as exc:
            raise ArtifactError(f"{self.root}: blob {digest} is missing") from exc
        if len(data) > max_size:
            raise ArtifactError(f"{self.root}: blob {digest} is too large to read into memory")
        if sha256_digest(data) != digest:
            raise ArtifactError(f"{self.root}: blob {digest} is corrupt (digest mismatch)")
        return data

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return _open_regular(self.blob_path(digest))
        except FileNotFoundError as exc:
            raise ArtifactError(f"{self.root}: blob {digest} is missing") from exc

    def verify_blob(self, digest: str, size: int) -> bool:
        """Return True if the stored blob has ``size`` bytes and hashes to ``digest``."""
        if not self.has_blob(digest, size):
            return False
        hasher = hashlib.sha256()
        with self.blob_path(digest).open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                hasher.update(chunk)
        return "sha256:" + hasher.hexdigest() == digest

    def blob_digests(self) -> Iterator[str]:
        folder = self.root / "blobs" / "sha256"
        if folder.is_dir():
            for entry in folder.iterdir():
                if len(entry.name) == 64 and not entry.name.startswith("."):
                    yield "sha256:" + entry.name

    def remove_stale_temp(self) -> list[str]:
        """Remove the temp files of downloads whose process is gone (killed); return their names."""
        folder = self.root / "blobs" / "sha256"
        removed: list[str] = []
        if not folder.is_dir():
            return removed
        for entry in folder.iterdir():
            if not entry.name.startswith(_TEMP):
                continue
            pid = entry.name[len(_TEMP) :].split("-", 1)[0]
            if pid.isdigit() and pid_alive(int(pid)):
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry.name)
        return removed

    def remove_blob(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(digest).unlink()

    # -- refs ------------------------------------------------------------------------------------

    def entries(self) -> list[Descriptor]:
        """Return the descriptors of ``index.json`` in file order."""
        try:
            with _open_regular(self.root / "index.json") as fh:
                raw = fh.read(MAX_INDEX + 1)
        except FileNotFoundError:
            return []
        return index_entries(raw, where=f"{self.root}/index.json")

    def refs(self) -> dict[str, Descriptor]:
        """Return the named refs (``NAME:TAG`` → descriptor)."""
        return named_refs(self.entries())

    def resolve(self, ref_name: str) -> Descriptor:
        """Return the descriptor tagged ``ref_name``; raise ArtifactError listing what exists."""
        return resolve_ref(self.refs(), ref_name, where=str(self.root))

    def find_digest(self, digest: str) -> Descriptor:
        """Return the index entry for ``digest`` (or one made from the blob) or raise."""
        for d in self.entries():
            if d.digest == digest:
                return d
        if not self.has_blob(digest):
            raise ArtifactError(f"{self.root}: no manifest {digest}")
        from ..artifact.documents import media_type_of

        data = self.read_blob(digest)
        return Descriptor(media_type=media_type_of(data), digest=digest, size=len(data))

    def set_refs(self, updates: Mapping[str, Descriptor]) -> list[str]:
        """Point each ref name at its descriptor (blobs must exist); return the names that changed."""
        for name, desc in updates.items():
            if not self.has_blob(desc.digest, desc.size):
                raise ArtifactError(f"{self.root}: refusing ref {name}: blob {desc.digest} missing")
        with file_lock(self.root / ".index.lock"):
            entries = self.entries()
            current = {d.annotations.get(REF_NAME): d for d in entries}
            changed = []
            for name, desc in updates.items():
                old = current.get(name)
                if old is not None and old.digest == desc.digest and old.media_type == desc.media_type:
                    continue
                changed.append(name)
                entries = [d for d in entries if d.annotations.get(REF_NAME) != name]
                entries.append(dataclasses.replace(desc, annotations={**desc.annotations, REF_NAME: name}))
            if changed:
                self._write_index(entries)
            return changed

    def update_ref(self, name: str, change: Callable[[bytes | None], bytes | None]) -> bool:
        """Point ``name`` at the index ``change(its current bytes or None)``, read and written under
        the index lock so that writers of one ref lose nothing; False if ``change`` returns None.

        Example: ``layout.update_ref("demo:sha256-…", lambda raw: with_entry(raw, entry, where=…))``
        """
        with file_lock(self.root / ".index.lock"):
            entries = self.entries()
            old = next((d for d in entries if d.annotations.get(REF_NAME) == name), None)
            new = change(self.read_blob(old.digest) if old is not None else None)
            if new is None:
                return False
            digest, _ = self.put_bytes(new)
            entries = [d for d in entries if d.annotations.get(REF_NAME) != name]
            ann = {REF_NAME: name}
            entries.append(Descriptor(media_type=INDEX_TYPE, digest=digest, size=len(new), annotations=ann))
            self._write_index(entries)
            return True

    def remove_refs(self, names: list[str]) -> None:
        with file_lock(self.root / ".index.lock"):
            entries = [d for d in self.entries() if d.annotations.get(REF_NAME) not in names]
            self._write_index(entries)

    def _write_index(self, entries: list[Descriptor]) -> None:
        doc = {
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [d.to_json() for d in entries],
        }
        atomic_write(self.root / "index.json", canonical_json(doc))


def index_entries(raw: bytes, *, where: str) -> list[Descriptor]:
    """Return the descriptors of the ``index.json`` bytes ``raw`` (at most :data:`MAX_INDEX`), in order."""
    if len(raw) > MAX_INDEX:
        raise ArtifactError(f"{where}: larger than {MAX_INDEX >> 20} MiB")
    data = parse_json(raw, where)
    manifests = data.get("manifests", []) if isinstance(data, dict) else None
    if not isinstance(manifests, list):
        raise ArtifactError(f"{where}: no 'manifests' list")
    return [Descriptor.from_json(d, where=f"{where} manifests[{i}]") for i, d in enumerate(manifests)]


def named_refs(entries: list[Descriptor]) -> dict[str, Descriptor]:
    """Return the entries that carry a ref name, by that name (``NAME:TAG``)."""
    return {d.annotations[REF_NAME]: d for d in entries if REF_NAME in d.annotations}


def resolve_ref(refs: Mapping[str, Descriptor], ref_name: str, *, where: str) -> Descriptor:
    """Return ``refs[ref_name]``; raise ArtifactError naming ``where`` and the refs there are."""
    if ref_name in refs:
        return refs[ref_name]
    # Referrers lists (``NAME:sha256-<hex>``) are not artifacts to name, and what no reference can
    # name (a served index.json's line breaks or terminal escapes) never reaches the error line.
    names = [r for r in sorted(refs) if is_ref_name(r) and not is_referrers_tag(r.rpartition(":")[2])]
    known = ", ".join(names[:_HINTED]) or "none"
    if len(names) > _HINTED:
        known += f", and {len(names) - _HINTED} more"
    raise ArtifactError(f"{where}: no ref {ref_name!r} (refs: {known})")
