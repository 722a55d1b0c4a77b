"""Drift: how far an installed generation is from what was installed. Its link, its files against
their RECORD (by size, or by hash), dangling symlinks, and its bytecode against the layers it
was unpacked from."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InstallError
from ..host import trust
from ..venvformat.files import dist_info_folders, is_dir_beneath, open_beneath, read_beneath, site_rel
from ..venvformat.record import MAX_RECORD, fd_matches, rows_of
from . import store
from .generations import Generations, State

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
    checked, drifted = record_drift(gens.path(current), hashes=hashes, shared=shared)
    drifted += missing_distributions(gens, current)
    return Drift(link=link, checked=checked, drifted=tuple(drifted), hashed=hashes, shared=len(shared))


def missing_distributions(gens: Generations, generation: str) -> list[str]:
    """Return ``missing distribution: …`` for each dist-info folder the generation was made with that is gone."""
    state = gens.read_state(generation)
    venv = gens.path(generation)
    try:
        site = site_rel(venv)
    except InstallError:
        return []  # record_drift reports the venv as unreadable
    if state is None:
        return []
    return [
        f"missing distribution: {venv / site / n}"
        for n in state.dist_infos
        if not is_dir_beneath(venv, f"{site}/{n}")
    ]


def record_drift(venv: Path, *, hashes: bool, shared: list[str] | None = None) -> tuple[int, list[str]]:
    """Return (files checked, drifted files) of ``venv``: RECORD rows whose file is missing, has
    another size or (with ``hashes``) another sha256, rows naming a path outside the venv (never
    read), and symlinks that dangle. Files that are not bytecode and have other links go to ``shared``.

    Every file is opened beneath the venv with no symlink followed (venvformat/files.py): a folder a user
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


def bytecode_drift(venv: Path, cache: Path, state: State) -> tuple[int, list[str]]:
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
