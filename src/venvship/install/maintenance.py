"""``venv-pull status``, ``rollback``, ``verify`` and ``prune``: commands on installed generations."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .._fsutil import file_lock
from ..errors import InstallError
from ..host import trust
from ..oci.layout import Layout
from . import cachestore, releases, store
from .drift import Drift, bytecode_drift, drift, missing_distributions, record_drift
from .faults import pause_point
from .generations import Generations, State
from .plan import state_folders
from .recording import record_refs, write_live_facts


@dataclass(frozen=True)
class DestStatus:
    """One destination: the live generation, all complete generations (oldest first), drift."""

    dest: str
    current: str | None
    generations: tuple[State, ...]
    drift: Drift
    unknown: tuple[str, ...] = ()  # generation folders whose state cannot be read (kept as they are)
    rollback_to: str | None = None  # where ``rollback`` would switch to
    family: str = ""  # the recipe's name: one service's release folders share it (releases.py)


def status(dest: Path | None, *, cache: Path, hashes: bool = False) -> list[DestStatus]:
    """Return the status of ``dest``, or of every destination the cache knows.

    Drift is checked by file size and existence against RECORD (one ``stat`` per file); with
    ``hashes`` every file is read and hashed as ``verify`` does.
    """
    if dest is not None:
        gens = Generations(dest)
        if not gens.root.is_dir() and gens.current_id() is None:
            raise InstallError(f"{gens.dest}: not a venv installed by venv-pull")
        dests = [dest]
    else:
        if os.path.exists(cache) and not cache.is_dir():
            raise InstallError(f"{cache}: not a blob cache (not a directory)")
        dests = [d for _, d, _ in cachestore.recorded_dests(cache)]
    out = []
    for path in dests:
        gens = Generations(path)
        out.append(
            DestStatus(
                dest=str(gens.dest),
                current=gens.current_id(),
                generations=tuple(gens.all()),
                drift=drift(gens, hashes=hashes),
                unknown=tuple(gens.unknown()),
                rollback_to=_generation_of(gens.rollback_target(gens.current_id())),
                family=release.family if (release := releases.release_of(path)) else "",
            )
        )
    if dest is None:
        # A family's releases together, newest first; venvs of no family after them.
        order = {
            str(r.dest): n for n, r in enumerate(r for rs in releases.families(dests).values() for r in rs)
        }
        out.sort(key=lambda s: order.get(s.dest, len(order)))
    return out


def _generation_of(state: State | None) -> str | None:
    return state.generation if state else None


@dataclass(frozen=True)
class RollbackResult:
    """The generation switched away from and the one switched to."""

    dest: str
    previous: str
    generation: str
    digest: str
    facts_written: bool
    forward: bool = False  # to a newer generation: the one an earlier rollback left
    previous_digest: str = ""  # the digest of ``previous``, the generation switched away from


def rollback(dest: Path, *, facts_dir: Path, lock_timeout: float | None = None) -> RollbackResult:
    """Switch ``dest`` back to its previous generation and update the facts."""
    gens = Generations(dest)
    trust.check_existing(state_folders(gens))  # never switch to a generation another user planted
    with file_lock(gens.lock_path, timeout=lock_timeout):
        current = gens.current_id()
        if current is None:
            raise InstallError(f"{gens.dest}: not a venv installed by venv-pull")
        live = gens.read_state(current)
        target = gens.rollback_target(current)
        if target is None:
            raise InstallError(f"{gens.dest}: no previous generation to roll back to")
        gens.switch(target.generation)
        # An adopted (pre-venvship) generation kept the values its facts had then; one adopted by
        # an older venv-pull kept none: the live one's options, emptied, rather than its values.
        unknown = tuple(replace(f, value="") for f in live.facts) if live else ()
        facts = target if target.facts or not target.adopted else replace(target, facts=unknown)
        written = write_live_facts(
            gens, facts, facts_dir=facts_dir, previous_digest=live.digest if live else ""
        )
        return RollbackResult(
            dest=str(gens.dest),
            previous=current,
            generation=target.generation,
            digest=target.digest,
            facts_written=bool(written),
            forward=live is not None
            and (target.created, target.generation) > (live.created, live.generation),
            previous_digest=live.digest if live else "",
        )


@dataclass(frozen=True)
class VerifyResult:
    """Files that differ from their RECORD hash, are missing, or symlinks that dangle; files shared
    with other venvs by hard links (see :class:`Drift`)."""

    dest: str
    generation: str
    checked: int
    drifted: tuple[str, ...]
    shared: tuple[str, ...] = ()


def verify(dest: Path, *, cache: Path | None = None) -> VerifyResult:
    """Check every installed file of the live generation: against its RECORD hash, and its bytecode
    against the layer it was unpacked from (when the host's store still has it, in ``cache``)."""
    gens = Generations(dest)
    current = gens.current_id()
    if current is None or not gens.path(current).is_dir():
        raise InstallError(f"{gens.dest}: not a venv installed by venv-pull")
    venv = gens.path(current)
    shared: list[str] = []
    checked, drifted = record_drift(venv, hashes=True, shared=shared)
    drifted += missing_distributions(gens, current)
    state = gens.read_state(current)
    if cache is not None and state is not None:
        more, bad = bytecode_drift(venv, cache, state)
        checked += more
        drifted += bad
    return VerifyResult(
        dest=str(gens.dest), generation=current, checked=checked, drifted=tuple(drifted), shared=tuple(shared)
    )


@dataclass(frozen=True)
class PruneResult:
    """Generations and cache blobs removed; with ``keep_releases``, release folders removed and
    those kept because something uses them (``DEST: why``)."""

    generations: tuple[str, ...]
    blobs: tuple[str, ...]
    releases: tuple[str, ...] = ()
    in_use: tuple[str, ...] = ()


def prune(
    *, cache: Path, keep: int, keep_releases: int | None = None, lock_timeout: float | None = None
) -> PruneResult:
    """Prune old generations of every destination the cache knows, then unreferenced blobs; with
    ``keep_releases``, first each release family's oldest release folders (releases.py)."""
    if not os.path.lexists(cache):
        return PruneResult(generations=(), blobs=())  # a fresh host: nothing installed, as status says
    if not (cache / "oci-layout").is_file():
        raise InstallError(f"{cache}: no blob cache here (no oci-layout); nothing to prune")
    layout = Layout(cache)
    removed_gens: list[str] = []
    with cachestore.cache_lock(cache, shared=False, timeout=lock_timeout):
        pause_point("prune-locked")
        gone = releases.ReleasePrune(removed=(), in_use=())
        if keep_releases is not None:
            dests = [d for _, d, _ in cachestore.recorded_dests(cache)]
            gone = releases.prune_releases(dests, keep=keep_releases, lock_timeout=lock_timeout)
        keep_blobs: set[str] = set()
        for refs_path, dest, _ in cachestore.recorded_dests(cache):
            gens = Generations(dest)
            if not gens.root.is_dir():
                refs_path.unlink()  # the destination is gone: its blobs are free
                continue
            trust.check_existing(state_folders(gens))  # its states decide what is removed
            with file_lock(gens.lock_path, timeout=lock_timeout):
                removed_gens += [f"{gens.dest}: {g}" for g in gens.prune(keep)]
                record_refs(gens, layout)
                for state in gens.all():
                    keep_blobs.update(state.blobs)
        blobs = cachestore.collect_garbage(layout, keep_blobs)
        store.collect(cache, keep_blobs)
        layout.remove_stale_temp()
    return PruneResult(
        generations=tuple(removed_gens), blobs=tuple(blobs), releases=gone.removed, in_use=gone.in_use
    )
