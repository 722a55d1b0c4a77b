"""``venv-pull status``, ``rollback``, ``verify`` and ``prune``: commands on installed generations."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

from .._fsutil import file_lock
from ..errors import InstallError
from ..oci.layout import Layout
from . import cachestore
from .generations import Generations, State
from .installer import _record_refs, write_live_facts
from .venvs import site_packages


@dataclass(frozen=True)
class DestStatus:
    """One destination: the live generation and all complete generations, oldest first."""

    dest: str
    current: str | None
    generations: tuple[State, ...]


def status(dest: Path | None, *, cache: Path) -> list[DestStatus]:
    """Return the status of ``dest``, or of every destination the cache knows."""
    dests = [dest] if dest else [d for _, d, _ in cachestore.recorded_dests(cache)]
    out = []
    for path in dests:
        gens = Generations(path)
        out.append(DestStatus(dest=str(gens.dest), current=gens.current_id(), generations=tuple(gens.all())))
    return out


@dataclass(frozen=True)
class RollbackResult:
    """The generation switched away from and the one switched to."""

    dest: str
    previous: str
    generation: str
    digest: str
    facts_written: bool


def rollback(dest: Path, *, facts_dir: Path, lock_timeout: float | None = None) -> RollbackResult:
    """Switch ``dest`` back to its previous generation and update the facts."""
    gens = Generations(dest)
    with file_lock(gens.lock_path, timeout=lock_timeout):
        current = gens.current_id()
        if current is None:
            raise InstallError(f"{gens.dest}: not a venv installed by venv-pull")
        states = {s.generation: s for s in gens.all()}
        live = states.get(current)
        older = [s for s in states.values() if s.generation != current]
        target = None
        if live and live.previous_generation in states and gens.intact(live.previous_generation):
            target = states[live.previous_generation]
        elif older:
            target = older[-1]
        if target is None:
            raise InstallError(f"{gens.dest}: no previous generation to roll back to")
        gens.switch(target.generation)
        # An adopted (pre-venvship) generation has no facts of its own: reuse the live one's sections.
        facts = target if target.facts or not live else replace(target, facts=live.facts)
        written = write_live_facts(
            gens, facts, facts_dir=facts_dir, previous_digest=live.digest if live else ""
        )
        return RollbackResult(
            dest=str(gens.dest),
            previous=current,
            generation=target.generation,
            digest=target.digest,
            facts_written=bool(written),
        )


@dataclass(frozen=True)
class VerifyResult:
    """Files that differ from their RECORD hash, are missing, or symlinks that dangle."""

    dest: str
    generation: str
    checked: int
    drifted: tuple[str, ...]


def verify(dest: Path) -> VerifyResult:
    """Check every installed file of the live generation against its RECORD hash."""
    gens = Generations(dest)
    current = gens.current_id()
    if current is None or not gens.path(current).is_dir():
        raise InstallError(f"{gens.dest}: not a venv installed by venv-pull")
    venv = gens.path(current)
    site = site_packages(venv)
    drifted: list[str] = []
    checked = 0
    for info in sorted(site.glob("*.dist-info")):
        record = info / "RECORD"
        if info.is_symlink() or not record.is_file():
            continue  # symlinked distro packages are dpkg's to verify
        for row in csv.reader(io.StringIO(record.read_text())):
            if len(row) < 2 or not row[1]:
                continue
            path = os.path.normpath(site / row[0])
            checked += 1
            try:
                with open(path, "rb") as fh:
                    digest = hashlib.sha256()
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
            except OSError:
                drifted.append(f"missing: {path}")
                continue
            if _b64(digest.digest()) != row[1]:
                drifted.append(f"modified: {path}")
    for root, dirs, files in os.walk(venv):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path) and not os.path.exists(path):
                drifted.append(f"dangling symlink: {path}")
    return VerifyResult(dest=str(gens.dest), generation=current, checked=checked, drifted=tuple(drifted))


def _b64(raw: bytes) -> str:
    import base64

    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class PruneResult:
    """Generations and cache blobs removed."""

    generations: tuple[str, ...]
    blobs: tuple[str, ...]


def prune(*, cache: Path, keep: int, lock_timeout: float | None = None) -> PruneResult:
    """Prune old generations of every destination the cache knows, then unreferenced blobs."""
    if not (cache / "oci-layout").exists():
        return PruneResult(generations=(), blobs=())
    layout = Layout(cache)
    removed_gens: list[str] = []
    with cachestore.cache_lock(cache, shared=False, timeout=lock_timeout):
        keep_blobs: set[str] = set()
        for refs_path, dest, _ in cachestore.recorded_dests(cache):
            gens = Generations(dest)
            if not gens.root.is_dir():
                refs_path.unlink()  # the destination is gone: its blobs are free
                continue
            with file_lock(gens.lock_path, timeout=lock_timeout):
                removed_gens += [f"{gens.dest}: {g}" for g in gens.prune(keep)]
                _record_refs(gens, layout)
                for state in gens.all():
                    keep_blobs.update(state.blobs)
        blobs = cachestore.collect_garbage(layout, keep_blobs)
    return PruneResult(generations=tuple(removed_gens), blobs=tuple(blobs))
