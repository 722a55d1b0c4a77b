"""``venv-pull status``, ``rollback``, ``verify`` and ``prune``: commands on installed generations."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from .._fsutil import file_lock
from ..errors import InstallError
from ..host import trust
from ..oci.layout import Layout
from ..venvformat.files import dist_info_folders, is_dir_beneath, open_beneath, read_beneath, site_rel
from ..venvformat.record import MAX_RECORD, fd_matches, rows_of
from . import cachestore, releases, store
from .faults import pause_point
from .generations import Generations, State
from .installer import _record_refs, state_folders, write_live_facts

LinkState = Literal["ok", "missing", "not a symlink", "foreign", "broken"]


@dataclass(frozen=True)
class Drift:
    """How a destination differs from what venv-pull installed.

    ``link``: the destination symlink is ``ok`` (points at a complete generation), ``missing``,
    ``not a symlink``, ``foreign`` (points outside the generations) or ``broken`` (at a generation
    that is gone or incomplete). ``drifted``: files of the live generation that differ from RECORD
    (by size, or by hash when ``hashed``), out of ``checked``. ``shared``: its files, bytecode
    aside, with more than one link (an older venv-pull linked them from the store).
    """

    link: LinkState
    checked: int
    drifted: tuple[str, ...]
    hashed: bool
    shared: int = 0  # files other than bytecode hard-linked elsewhere: an edit here reaches there

    def to_json(self) -> dict[str, object]:
        return {
            "link": self.link,
            "checked": self.checked,
            "files": len(self.drifted),
            "hashed": self.hashed,
            "shared": self.shared,
        }


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


def link_state(gens: Generations) -> LinkState:
    """Return whether the destination symlink points at a complete generation (see :class:`Drift`)."""
    if not os.path.lexists(gens.dest):
        return "missing"
    if not gens.dest.is_symlink():
        return "not a symlink"
    current = gens.current_id()
    if current is None:
        return "foreign"
    return "ok" if gens.intact(current) else "broken"


def drift(gens: Generations, *, hashes: bool) -> Drift:
    """Return the drift of ``gens``' destination: its link, and its files against RECORD."""
    link = link_state(gens)
    current = gens.current_id()
    if link != "ok" or current is None:
        return Drift(link=link, checked=0, drifted=(), hashed=hashes)
    shared: list[str] = []
    checked, drifted = _record_drift(gens.path(current), hashes=hashes, shared=shared)
    drifted += _missing(gens, current)
    return Drift(link=link, checked=checked, drifted=tuple(drifted), hashed=hashes, shared=len(shared))


def _missing(gens: Generations, generation: str) -> list[str]:
    """Return ``missing distribution: …`` for each dist-info folder the generation was made with that is gone."""
    state = gens.read_state(generation)
    venv = gens.path(generation)
    try:
        site = site_rel(venv)
    except InstallError:
        return []  # _record_drift reports the venv as unreadable
    if state is None:
        return []
    return [
        f"missing distribution: {venv / site / n}"
        for n in state.dist_infos
        if not is_dir_beneath(venv, f"{site}/{n}")
    ]


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
    checked, drifted = _record_drift(venv, hashes=True, shared=shared)
    drifted += _missing(gens, current)
    state = gens.read_state(current)
    if cache is not None and state is not None:
        more, bad = _bytecode_drift(venv, cache, state)
        checked += more
        drifted += bad
    return VerifyResult(
        dest=str(gens.dest), generation=current, checked=checked, drifted=tuple(drifted), shared=tuple(shared)
    )


def _record_drift(venv: Path, *, hashes: bool, shared: list[str] | None = None) -> tuple[int, list[str]]:
    """Return (files checked, drifted files) of ``venv``: RECORD rows whose file is missing, has
    another size or (with ``hashes``) another sha256, rows naming a path outside the venv (never
    read), and symlinks that dangle. Files that are not bytecode and have other links go to ``shared``.

    Every file is opened beneath the venv with no symlink followed (venvfiles.py): a folder a user
    swapped for a symlink is drift, never a way to have root hash a file outside.
    """
    try:
        site = site_rel(venv)
    except InstallError as exc:
        return 0, [f"unreadable: {exc}"]
    drifted: list[str] = []
    checked = 0
    for record in _records(venv, site):
        where = f"{venv}/{record}"
        try:
            rows = rows_of(read_beneath(venv, record, limit=MAX_RECORD), where=where, site_rel=site)
        except (OSError, InstallError):
            drifted.append(f"unreadable: {where}")
            continue
        for row in rows:
            if not row.hash:
                continue
            if not row.path:
                drifted.append(f"outside the venv: {row.given} (named by {where})")
                continue
            checked += 1
            problem = _file_drift(venv, row.path, row.hash if hashes else "", size=row.size, shared=shared)
            if problem:
                drifted.append(problem)
    drifted += _dangling_symlinks(venv)
    return checked, drifted


def _records(venv: Path, site: str) -> list[str]:
    """Return the venv-relative RECORD files of ``site``'s dist-info folders (none through a symlink)."""
    try:
        fd = open_beneath(venv, site, directory=True)
    except OSError:
        return []
    try:
        # Symlinked dist-info folders (symlink-system-packages) are the system's, not checked.
        names = dist_info_folders(fd)
    finally:
        os.close(fd)
    return [f"{site}/{n}/RECORD" for n in names]


def _file_drift(venv: Path, rel: str, field: str, *, size: int = -1, shared: list[str] | None = None) -> str:
    """Return how venv file ``rel`` drifted from its ``size`` (-1: any) and hash ``field`` ("":
    not hashed), or "" if it did not; opened beneath the venv, no symlink followed. Its path goes
    to ``shared`` when it is not bytecode and has other hard links."""
    path = os.path.join(venv, rel)
    try:
        fd = open_beneath(venv, rel)
    except FileNotFoundError:
        return f"missing: {path}"
    except OSError:
        return f"modified: {path} (a symlink or not a plain path on its way)"
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return f"modified: {path} (not a regular file)"
        if shared is not None and st.st_nlink > 1 and not rel.endswith(".pyc"):
            shared.append(path)
        if size >= 0 and size != st.st_size:
            return f"modified: {path}"
        if field and not fd_matches(fh, field):
            return f"modified: {path}"
    return ""


def _dangling_symlinks(top: Path) -> list[str]:
    """Return the symlinks under ``top`` whose target is missing (links to folders not followed).

    Folders are opened beneath ``top``, none through a symlink. As root, a symlink another user
    made is reported as such and never followed: whether it dangles would tell that user if a path
    only root can see exists.
    """
    found = []
    folders = [""]
    while folders:
        rel = folders.pop()
        try:
            fd = open_beneath(top, rel, directory=True)
        except OSError:
            continue
        try:
            with os.scandir(fd) as listing:
                entries = list(listing)
            for entry in entries:
                # DirEntry answers from the directory listing: one stat per symlink, none per file.
                path = os.path.join(top, rel, entry.name)
                if entry.is_symlink():
                    if trust.enforcing() and entry.stat(follow_symlinks=False).st_uid != 0:
                        found.append(f"symlink another user made: {path} (not followed)")
                    elif not _exists(entry.name, fd):
                        found.append(f"dangling symlink: {path}")
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(f"{rel}/{entry.name}" if rel else entry.name)
        finally:
            os.close(fd)
    return sorted(found)


def _exists(name: str, folder: int) -> bool:
    try:
        os.stat(name, dir_fd=folder)
    except OSError:
        return False
    return True


def _bytecode_drift(venv: Path, cache: Path, state: State) -> tuple[int, list[str]]:
    """Return (pycs checked, drifted ones): each ``.pyc`` of the generation against its layer's."""
    checked, drifted = 0, []
    for digest in state.blobs:
        entry = store.load(store.entry_path(cache, digest)) if digest.startswith("sha256:") else None
        if entry is None:
            continue
        for rel, (field, _, _) in entry.files.items():
            if not rel.endswith(".pyc"):
                continue
            problem = _file_drift(venv, rel, field)
            if problem.startswith("missing: "):
                continue  # installed with --no-compile
            checked += 1
            if problem:
                drifted.append(problem)
    return checked, drifted


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
                with store.unlinking(cache, [b for s in gens.to_prune(keep) for b in s.blobs]):
                    removed_gens += [f"{gens.dest}: {g}" for g in gens.prune(keep)]
                _record_refs(gens, layout)
                for state in gens.all():
                    keep_blobs.update(state.blobs)
        blobs = cachestore.collect_garbage(layout, keep_blobs)
        store.collect(cache, keep_blobs)
        layout.remove_stale_temp()
    return PruneResult(
        generations=tuple(removed_gens), blobs=tuple(blobs), releases=gone.removed, in_use=gone.in_use
    )
