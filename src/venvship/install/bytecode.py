"""Bytecode for a new generation: reuse the previous generation's ``.pyc`` of unchanged files, compile the rest.

A timestamp ``.pyc`` is valid for its source when its header holds the interpreter's magic
number and the source's mtime and size. For every ``.py`` whose content is the same in the
previous generation (RECORD hash, and the old file still hashing to it), the old ``.pyc`` is
hard-linked and the new source given the old source's mtime, so the pyc stays valid; the rest is
compiled on all cores. The path recorded inside a reused
``.pyc`` names the previous generation; importlib replaces it with the real source path when it
loads the code (``_imp._fix_co_filename``), so tracebacks name the new files.

A generation cloned from the live one (clone.py) has the pycs of its unchanged files already:
they are found valid and counted as reused; only the new files are compiled.
"""

from __future__ import annotations

import base64
import csv
import errno
import hashlib
import io
import json
import os
import posixpath
import shutil
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .._log import logger
from .._process import run
from ..errors import InstallError

_PROBE = "import sys, importlib.util as u; print(sys.implementation.cache_tag or '', u.MAGIC_NUMBER.hex())"


@dataclass(frozen=True)
class BytecodeResult:
    """How many ``.py`` files kept the previous generation's ``.pyc``, how many were compiled."""

    reused: int
    compiled: int

    def to_json(self) -> dict[str, int]:
        return {"reused": self.reused, "compiled": self.compiled}


def python_sources(site: Path) -> dict[str, str]:
    """Return ``relative path → RECORD hash`` of the ``.py`` files the dists in ``site`` installed.

    Symlinked dist-info folders (distro packages) and paths outside ``site`` are left out.
    """
    out: dict[str, str] = {}
    for record in site.glob("*.dist-info/RECORD"):
        if record.parent.is_symlink():
            continue
        try:
            text = record.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for row in csv.reader(io.StringIO(text)):
            if len(row) < 2 or not row[0].endswith(".py") or "=" not in row[1]:
                continue
            rel = posixpath.normpath(row[0])
            if rel.startswith(("/", "../")) or rel == "..":
                continue
            out[rel] = row[1]
    return out


def compile_generation(
    python: Path,
    venv: Path,
    *,
    site: Path,
    previous_site: Path | None,
    final: Path,
    env: Mapping[str, str],
) -> BytecodeResult:
    """Give every ``.py`` in ``site`` (the site-packages of ``venv``) a valid ``.pyc``: reused or compiled.

    ``final`` is the name ``venv`` gets once complete: fresh ``.pyc`` files record source paths
    under it, not under the staging folder.

    Example: ``compile_generation(staging / "bin/python", staging, site=site, previous_site=None,
    final=final, env=env)``
    """
    reused: list[str] = []
    if previous_site is not None and previous_site.is_dir():
        sources = python_sources(site)
        reused = reuse_bytecode(python, sources, site=site, previous_site=previous_site, env=env)
    # site-packages only, as pip compiles: bin/ holds scripts (rewritten by relocate() later), not modules.
    compiled, uptodate = compile_bytecode(python, site, staged=venv, final=final, env=env, valid=reused)
    # Up to date already: pycs a cloned generation took over from the live one with their sources.
    total = len(reused) + uptodate
    logger.info("bytecode: %d files reused from the previous generation, %d compiled", total, compiled)
    return BytecodeResult(reused=total, compiled=compiled)


def reuse_bytecode(
    python: Path, sources: Mapping[str, str], *, site: Path, previous_site: Path, env: Mapping[str, str]
) -> list[str]:
    """Link valid ``.pyc`` files of unchanged ``sources`` from ``previous_site`` into ``site``.

    Returns the sources (paths under ``site``) that got one.
    """
    old_sources = python_sources(previous_site)
    common = [(rel, digest) for rel, digest in sources.items() if old_sources.get(rel) == digest]
    if not common:
        return []
    tag, magic = _interpreter_tag(python, env)
    if not tag:
        return []  # an implementation without a bytecode cache
    reuse = _Reuse(site=os.fspath(site), previous_site=os.fspath(previous_site), tag=tag, magic=magic)
    return [path for path in (reuse.one(rel, digest) for rel, digest in common) if path]


def _interpreter_tag(python: Path, env: Mapping[str, str]) -> tuple[str, bytes]:
    proc = run([python, "-I", "-S", "-c", _PROBE], env=env, check=False)
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) != 2:
        raise InstallError(f"{python}: cannot read its bytecode tag:\n{proc.stdout[-1500:]}")
    return parts[0], bytes.fromhex(parts[1])


class _Reuse:
    """Per-file reuse; plain string paths, as this runs for every module of a large venv."""

    def __init__(self, *, site: str, previous_site: str, tag: str, magic: bytes) -> None:
        self.site = site
        self.previous_site = previous_site
        self.tag = tag
        self.magic = magic
        self.made: set[str] = set()

    def one(self, rel: str, digest: str) -> str | None:
        """Reuse the old pyc of ``rel`` if it is valid for the same content; return the new source."""
        folder, name = posixpath.split(rel)
        pyc_rel = posixpath.join(folder, "__pycache__", f"{name[:-3]}.{self.tag}.pyc")
        old_src = os.path.join(self.previous_site, rel)
        new_src = os.path.join(self.site, rel)
        old_pyc = os.path.join(self.previous_site, pyc_rel)
        try:
            old_st = os.lstat(old_src)
            new_st = os.lstat(new_src)
            if not (stat.S_ISREG(old_st.st_mode) and stat.S_ISREG(new_st.st_mode)):
                return None
            if old_st.st_size != new_st.st_size:
                return None
            fd = os.open(old_pyc, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                header = os.read(fd, 16)
            finally:
                os.close(fd)
            # Timestamp pyc header (PEP 552): magic, flags 0, source mtime and size, both mod 2**32.
            size = old_st.st_size & 0xFFFFFFFF
            expected = self.magic + struct.pack("<III", 0, int(old_st.st_mtime) & 0xFFFFFFFF, size)
            if header != expected or not _same_content(old_src, digest, size=old_st.st_size):
                return None
            cache_dir = os.path.join(self.site, folder, "__pycache__")
            if cache_dir not in self.made:
                os.makedirs(cache_dir, exist_ok=True)
                self.made.add(cache_dir)
            link_or_copy(old_pyc, os.path.join(self.site, pyc_rel))
            # The pyc's header names the old source's mtime: give the (identical) new source that mtime.
            os.utime(new_src, ns=(new_st.st_atime_ns, old_st.st_mtime_ns))
        except OSError as exc:
            logger.debug("bytecode of %s not reused: %s", rel, exc)
            return None
        return new_src


def link_or_copy(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (copy, with its mtime, where a link cannot be made).

    Sharing the inode between generations is safe as long as nothing writes into it: Python and
    compileall never write a pyc in place, they write a temp file and rename it over the old one.
    """
    try:
        os.link(src, dst)
    except OSError as exc:
        # Another file system, a protected_hardlinks refusal, too many links to one inode.
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(src, dst)


def _same_content(path: str, record_hash: str, *, size: int) -> bool:
    """Return True if ``path`` still hashes to ``record_hash``.

    The old file may have been edited in place (a hot patch, same size) and its pyc recompiled
    for the edit: that pyc must not travel to the new generation's unedited file.
    """
    algo, _, expected = record_hash.partition("=")
    if algo not in hashlib.algorithms_guaranteed:
        return False
    digest = hashlib.new(algo)
    with open(path, "rb", buffering=0) as fh:
        while True:
            chunk = fh.read(max(size + 1, 1 << 16))  # sources are small: mostly one read
            if not chunk:
                break
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() == expected


# Run by the venv's own python (``-I -S``: nothing from the venv can shadow the stdlib here).
# Like ``compileall -j0`` with up-to-date pycs skipped, but the skip check runs in one process and
# only the files to compile go to the workers, in chunks: compileall hands every file to its pool
# one by one, which costs seconds on a large venv where most pycs were reused.
_COMPILE = r"""
import importlib.util, itertools, json, os, py_compile, struct, sys
root, staged, final = sys.argv[1:4]
valid = set(json.load(sys.stdin))  # given a valid pyc just now: no need to read it again
magic = importlib.util.MAGIC_NUMBER
todo = []
uptodate = 0
for top, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not os.path.islink(os.path.join(top, d)))
    for name in sorted(files):
        if not name.endswith(".py"):
            continue
        src = os.path.join(top, name)
        if src in valid:
            continue
        try:
            st = os.stat(src)
            with open(importlib.util.cache_from_source(src), "rb") as fh:
                head = fh.read(16)
            if head == magic + struct.pack("<III", 0, int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF):
                uptodate += 1
                continue
        except OSError:
            pass
        todo.append(src)
try:
    cores = len(os.sched_getaffinity(0))
except AttributeError:
    cores = os.cpu_count() or 1
workers = min(cores, len(todo) // 32)
args = (
    todo,
    itertools.repeat(None),
    [final + src[len(staged):] for src in todo],  # the path the pyc records: the final generation's
    itertools.repeat(False),
    itertools.repeat(-1),
    itertools.repeat(py_compile.PycInvalidationMode.TIMESTAMP),
    itertools.repeat(1),
)
if workers > 1:
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(py_compile.compile, *args, chunksize=max(1, len(todo) // (workers * 8))))
else:
    done = list(map(py_compile.compile, *args))
sys.stdout.flush()
print(json.dumps({"compiled": len(todo), "failed": done.count(None), "uptodate": uptodate}))
"""


def compile_bytecode(
    python: Path,
    folder: Path,
    *,
    staged: Path,
    final: Path,
    env: Mapping[str, str],
    valid: Sequence[str] = (),
) -> tuple[int, int]:
    """Compile the ``.py`` files of ``folder`` that lack a valid ``.pyc``, on all cores.

    Returns how many were compiled, and how many (not in ``valid``) had a valid ``.pyc`` already.

    Timestamp pycs whatever SOURCE_DATE_EPOCH says: only those are skipped here and reused on the
    next upgrade, and hash-checked ones would cost a source read at every import. The source path
    recorded in each pyc names ``final`` instead of ``staged``. ``valid``: sources known to have a
    valid pyc already (as paths under ``folder``).
    """
    argv: list[str | os.PathLike[str]] = [python, "-I", "-S", "-c", _COMPILE, folder, staged, final]
    proc = run(argv, env=env, check=False, stdin=json.dumps(list(valid)))
    lines = proc.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1])
        compiled, failed, uptodate = (int(summary[k]) for k in ("compiled", "failed", "uptodate"))
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise InstallError(f"compiling bytecode in {folder} failed:\n{proc.stdout[-3000:]}") from exc
    if failed or proc.returncode != 0:
        # Like pip, tolerate files that do not compile (tests, py2 leftovers): they just run uncompiled.
        logger.warning("%d files did not compile (ignored):\n%s", failed, "\n".join(lines[:-1])[-1500:])
    return compiled, uptodate
