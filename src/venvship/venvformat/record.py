"""RECORD files of installed distributions (PEP 376/627): the one place that reads, hashes and
rewrites them, on both sides.

Rows name paths relative to site-packages (scripts as ``../../../bin/NAME``); a row whose path
leaves the venv is never followed: it is reported, not read. Reads are bounded (a RECORD is
small; a file named by one may be anything). Stdlib only.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

from ..errors import InstallError

MAX_RECORD = 16 << 20  # bytes of one RECORD file read at most


@dataclass(frozen=True)
class Row:
    """One RECORD row: the path relative to the venv root, its hash field and size (-1: not given)."""

    path: str  # venv-relative, normalised; "" when the row's path leaves the venv
    given: str  # the path as the row has it
    hash: str  # "sha256=<urlsafe b64>" or ""
    size: int


def hash_field(data: bytes) -> str:
    """Return a RECORD hash field (``sha256=<urlsafe b64, no padding>``) for ``data``."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def file_hash_field(path: str | os.PathLike[str], *, algo: str = "sha256") -> str:
    """Return the RECORD hash field of the file at ``path`` (a regular file, not followed if a link).

    Raises OSError if it cannot be read.
    """
    digest = hashlib.new(algo)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not _is_regular(fh.fileno()):
            raise OSError(f"{path}: not a regular file")
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"{algo}=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _is_regular(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)


def fd_matches(fh: BinaryIO, field: str) -> bool:
    """Return True if the open file ``fh`` (read from where it is) hashes to RECORD hash ``field``."""
    algo, sep, _ = field.partition("=")
    if not sep or algo not in hashlib.algorithms_guaranteed:
        return False
    digest = hashlib.new(algo)
    try:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    except OSError:
        return False
    return f"{algo}=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() == field


def matches(path: str | os.PathLike[str], field: str) -> bool:
    """Return True if the file at ``path`` hashes to the RECORD hash ``field`` (False if unreadable)."""
    algo, sep, _ = field.partition("=")
    if not sep or algo not in hashlib.algorithms_guaranteed:
        return False
    try:
        return file_hash_field(path, algo=algo) == field
    except OSError:
        return False


def read_rows(record: Path, *, site_rel: str) -> list[Row]:
    """Return the rows of ``record`` with paths made venv-relative (``site_rel``: site-packages in the venv).

    Raises InstallError when the file cannot be read or parsed.
    """
    try:
        fd = os.open(record, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(MAX_RECORD + 1)
    except OSError as exc:
        raise InstallError(f"{record}: cannot read ({exc.strerror or exc})") from exc
    return rows_of(raw, where=str(record), site_rel=site_rel)


def rows_of(raw: bytes, *, where: str, site_rel: str) -> list[Row]:
    """Return the rows of RECORD content ``raw`` (at most :data:`MAX_RECORD` bytes), read from ``where``.

    Raises InstallError when it is too large or cannot be parsed.
    """
    if len(raw) > MAX_RECORD:
        raise InstallError(f"{where}: larger than {MAX_RECORD >> 20} MiB")
    try:
        table = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InstallError(f"{where}: not a RECORD file ({exc})") from exc
    out = []
    for row in table:
        if not row or not row[0]:
            continue
        size = int(row[2]) if len(row) > 2 and row[2].isdigit() else -1
        out.append(
            Row(
                path=venv_path(row[0], site_rel=site_rel),
                given=row[0],
                hash=row[1] if len(row) > 1 else "",
                size=size,
            )
        )
    return out


def venv_path(given: str, *, site_rel: str) -> str:
    """Return the venv-relative form of a RECORD path, or "" if it leaves the venv (absolute, ``..``)."""
    if "\0" in given or given.startswith("/") or "\\" in given:
        return ""
    path = posixpath.normpath(posixpath.join(site_rel, given))
    if path.startswith("../") or path in ("..", ".") or path.startswith("/"):
        return ""
    return path


def records(site: Path) -> Iterator[Path]:
    """Yield the RECORD files of the real (not symlinked) dist-info folders of ``site``."""
    for info in sorted(site.glob("*.dist-info")):
        if not info.is_symlink() and info.is_dir():
            yield info / "RECORD"


def fix_records(site: Path, changed: Mapping[Path, bytes]) -> None:
    """Give the RECORD rows of the ``changed`` files (path → new bytes) their new hash and size.

    A RECORD is replaced through a temp file and a rename, never rewritten in place: it may be
    a hard link shared with another generation or the host's store.
    """
    wanted = {posixpath.normpath(os.path.relpath(path, site)): data for path, data in changed.items()}
    names = {posixpath.basename(rel) for rel in wanted}
    for record in records(site):
        text = record.read_text(encoding="utf-8")
        if not any(name in text for name in names):
            continue
        rows = list(csv.reader(io.StringIO(text)))
        dirty = False
        for row in rows:
            if len(row) >= 3 and row[1]:
                data = wanted.get(posixpath.normpath(row[0]))
                if data is not None:
                    row[1], row[2] = hash_field(data), str(len(data))
                    dirty = True
        if dirty:
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(rows)
            replace_file(record, out.getvalue().encode(), mode=record.stat().st_mode)


def replace_file(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with a new file (new inode) holding ``data``: a temp file and one rename.

    Never an in-place write: the old file may be a hard link shared with another generation.
    No fsync: a generation is made durable as a whole, and a crash leaves a ``.partial`` to redo.
    """
    tmp = path.with_name(f".{path.name}.venvship-tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a killed run: never written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode & 0o755)
    os.replace(tmp, path)
