"""Bytecode for a new generation: reuse the previous generation's ``.pyc`` of unchanged files, compile the rest.

A timestamp ``.pyc`` is valid for its source when its header holds the interpreter's magic
number and the source's mtime and size. For every ``.py`` whose content is the same in the
previous generation (RECORD hash, and the old file still hashing to it), the old ``.pyc`` is
copied and the new source given the old source's mtime, so the copy stays valid; ``compileall``
then skips it and compiles only the rest, on all cores. The path recorded inside a reused
``.pyc`` names the previous generation; importlib replaces it with the real source path when it
loads the code (``_imp._fix_co_filename``), so tracebacks name the new files.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import posixpath
import shutil
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .._log import logger
from .._process import run
from ..errors import InstallError

_PROBE = "import sys, importlib.util as u; print(sys.implementation.cache_tag or '', u.MAGIC_NUMBER.hex())"


@dataclass(frozen=True)
class BytecodeResult:
    """How many ``.py`` files got a ``.pyc`` copied from the previous generation, how many were compiled."""

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
    """Give every ``.py`` of ``venv`` a valid ``.pyc``: reused from ``previous_site`` or compiled.

    ``final`` is the name ``venv`` gets once complete: fresh ``.pyc`` files record source paths
    under it, not under the staging folder.

    Example: ``compile_generation(staging / "bin/python", staging, site=site, previous_site=None,
    final=final, env=env)``
    """
    sources = python_sources(site)
    reused = 0
    if previous_site is not None and previous_site.is_dir():
        reused = reuse_bytecode(python, sources, site=site, previous_site=previous_site, env=env)
    compile_bytecode(python, venv, staged=venv, final=final, env=env)
    result = BytecodeResult(reused=reused, compiled=max(len(sources) - reused, 0))
    logger.info(
        "bytecode: %d files reused from the previous generation, %d compiled", reused, result.compiled
    )
    return result


def reuse_bytecode(
    python: Path, sources: Mapping[str, str], *, site: Path, previous_site: Path, env: Mapping[str, str]
) -> int:
    """Copy valid ``.pyc`` files of unchanged sources from ``previous_site`` into ``site``; return the count."""
    old_sources = python_sources(previous_site)
    common = [(rel, digest) for rel, digest in sources.items() if old_sources.get(rel) == digest]
    if not common:
        return 0
    tag, magic = _interpreter_tag(python, env)
    if not tag:
        return 0  # an implementation without a bytecode cache
    count = 0
    for rel, digest in common:
        if _reuse_one(rel, digest, site=site, previous_site=previous_site, tag=tag, magic=magic):
            count += 1
    return count


def _interpreter_tag(python: Path, env: Mapping[str, str]) -> tuple[str, bytes]:
    proc = run([python, "-I", "-S", "-c", _PROBE], env=env, check=False)
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) != 2:
        raise InstallError(f"{python}: cannot read its bytecode tag:\n{proc.stdout[-1500:]}")
    return parts[0], bytes.fromhex(parts[1])


def _reuse_one(rel: str, digest: str, *, site: Path, previous_site: Path, tag: str, magic: bytes) -> bool:
    old_src = previous_site / rel
    new_src = site / rel
    pyc_name = f"{old_src.name[:-3]}.{tag}.pyc"
    old_pyc = old_src.parent / "__pycache__" / pyc_name
    try:
        old_st = os.lstat(old_src)
        new_st = os.lstat(new_src)
        pyc_st = os.lstat(old_pyc)
        if not all(stat.S_ISREG(st.st_mode) for st in (old_st, new_st, pyc_st)):
            return False
        if old_st.st_size != new_st.st_size:
            return False
        with open(old_pyc, "rb") as fh:
            header = fh.read(16)
        # Timestamp pyc header (PEP 552): magic, flags 0, source mtime and size, both mod 2**32.
        expected = magic + struct.pack(
            "<III", 0, int(old_st.st_mtime) & 0xFFFFFFFF, old_st.st_size & 0xFFFFFFFF
        )
        if header != expected or not _same_content(old_src, digest):
            return False
        new_pyc = new_src.parent / "__pycache__" / pyc_name
        new_pyc.parent.mkdir(exist_ok=True)
        shutil.copyfile(old_pyc, new_pyc)
        # The copied header names the old source's mtime: give the (identical) new source that mtime.
        os.utime(new_src, ns=(new_st.st_atime_ns, old_st.st_mtime_ns))
    except OSError as exc:
        logger.debug("bytecode of %s not reused: %s", rel, exc)
        return False
    return True


def _same_content(path: Path, record_hash: str) -> bool:
    """Return True if ``path`` still hashes to ``record_hash`` (the old file may have been edited)."""
    algo, _, expected = record_hash.partition("=")
    if algo not in hashlib.algorithms_guaranteed:
        return False
    digest = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() == expected


def compile_bytecode(
    python: Path, folder: Path, *, staged: Path, final: Path, env: Mapping[str, str]
) -> None:
    """Compile ``folder`` with all cores, skipping up-to-date ``.pyc``; recorded paths name ``final``."""
    argv: list[str | os.PathLike[str]] = [python, "-m", "compileall", "-q", "-j0"]
    # Timestamp pycs whatever SOURCE_DATE_EPOCH says: compileall only skips (and we only reuse)
    # timestamp pycs, and hash-checked ones would cost a source read at every import.
    argv += ["--invalidation-mode", "timestamp", "-s", staged, "-p", final, folder]
    proc = run(argv, env=env, check=False)
    if proc.returncode != 0:
        # Like pip, tolerate files that do not compile (tests, py2 leftovers): they just run uncompiled.
        logger.warning("compileall reported errors (ignored):\n%s", proc.stdout[-1500:])
