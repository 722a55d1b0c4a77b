"""Generations of one destination: staging, the atomic switch, state files, rollback and prune.

Layout (DESIGN §5)::

    DEST                          symlink → .NAME.venvship/<id>
    .NAME.venvship/<id>/          one complete venv per generation, with STATE_FILE inside
    .NAME.venvship/<id>.partial/  staging; never pointed to; removed by the next run
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .._fsutil import atomic_write
from .._log import logger
from ..artifact.documents import Fact, canonical_json
from ..errors import InstallError
from ..venvformat.files import is_dir_beneath, site_rel

STATE_FILE = "venvship-state.json"
MAX_STATE = 16 << 20
FACTS_PENDING = ".venvship-facts-pending"  # in a generation: switched to, facts not yet written
PARTIAL = ".partial"


def mark_facts_pending(folder: Path) -> None:
    """Mark ``folder`` as switched to with its facts not yet written.

    Made new (temp file + rename), never by writing into a file already there: that one may be
    a hard link into the store, shared with every other venv.
    """
    atomic_write(folder / FACTS_PENDING, b"")


@dataclass(frozen=True)
class State:
    """What a generation holds: the artifact, where it came from, when and with which tools."""

    generation: str
    digest: str
    ref_digest: str
    reference: str
    name: str
    version: str
    created: float
    previous_digest: str
    previous_generation: str
    tools: Mapping[str, str]
    lock: tuple[str, ...]
    blobs: tuple[str, ...]
    facts: tuple[Fact, ...] = ()
    adopted: bool = False
    dist_infos: tuple[str, ...] = ()  # site-packages-relative dist-info folders it was made with
    signers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # digest → key ids verified

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "digest": self.digest,
            "ref_digest": self.ref_digest,
            "reference": self.reference,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "previous_digest": self.previous_digest,
            "previous_generation": self.previous_generation,
            "tools": dict(self.tools),
            "lock": list(self.lock),
            "blobs": list(self.blobs),
            "facts": [[f.file, f.section, f.option, f.value] for f in self.facts],
            "adopted": self.adopted,
            "dist_infos": list(self.dist_infos),
            "signers": {d: list(keys) for d, keys in self.signers.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> State:
        return cls(
            generation=str(data["generation"]),
            digest=str(data["digest"]),
            ref_digest=str(data.get("ref_digest", "")),
            reference=str(data.get("reference", "")),
            name=str(data.get("name", "")),
            version=str(data.get("version", "")),
            created=float(data.get("created", 0)),
            previous_digest=str(data.get("previous_digest", "")),
            previous_generation=str(data.get("previous_generation", "")),
            tools={str(k): str(v) for k, v in dict(data.get("tools") or {}).items()},
            lock=tuple(str(x) for x in data.get("lock") or ()),
            blobs=tuple(str(x) for x in data.get("blobs") or ()),
            facts=tuple(Fact(file=a, section=b, option=c, value=d) for a, b, c, d in data.get("facts") or ()),
            adopted=bool(data.get("adopted", False)),
            dist_infos=tuple(str(x) for x in data.get("dist_infos") or ()),
            signers={
                str(d): tuple(str(k) for k in keys) for d, keys in dict(data.get("signers") or {}).items()
            },
        )


def _roots_only(st: os.stat_result) -> bool:
    """Whether only root can change what ``st`` describes (always True when not run as root:
    then nothing is run as root from it)."""
    return os.geteuid() != 0 or (st.st_uid == 0 and not st.st_mode & 0o022)


class Generations:
    """The generations of one destination path.

    Example: ``Generations(Path("/openstack/venvs/keystone")).current()``
    """

    def __init__(self, dest: Path) -> None:
        self.dest = Path(os.path.abspath(dest))
        self.root = self.dest.parent / f".{self.dest.name}.venvship"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    def path(self, generation: str) -> Path:
        return self.root / generation

    def current_id(self) -> str | None:
        """Return the generation the destination points to (None: missing or not ours)."""
        try:
            target = os.readlink(self.dest)
        except OSError:
            return None
        head, _, name = target.rpartition("/")
        if head != self.root.name and head != str(self.root):
            return None
        return name

    def read_state(self, generation: str) -> State | None:
        """Return the generation's state, or None when it is missing or unreadable (unknown).

        An unreadable state only ever means "unknown": never a reason to remove the generation.
        So does a state that names another generation than its folder's: prune and switch go by
        the name a state gives, which must never lead out of its folder.
        """
        if generation in ("", ".", "..") or "/" in generation:
            return None
        try:
            if not _roots_only(os.lstat(self.root / generation)):
                return None  # a folder another user can change holds whatever state they like
            fd = os.open(self.root / generation / STATE_FILE, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                if not _roots_only(os.fstat(fh.fileno())):
                    return None
                raw = fh.read(MAX_STATE + 1)
            if len(raw) > MAX_STATE:
                return None
            data = json.loads(raw)
            state = State.from_json(data) if isinstance(data, dict) else None
            return state if state is not None and state.generation == generation else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None

    def intact(self, generation: str) -> bool:
        """Return True if the generation has its state file and a python that resolves."""
        path = self.root / generation
        return (path / STATE_FILE).is_file() and os.path.exists(path / "bin" / "python")

    def complete(self, state: State) -> bool:
        """Return True if every dist-info folder ``state`` was made with is still in its generation
        (a distribution deleted by hand is never reported as unchanged)."""
        if not state.dist_infos:
            return True  # made before venv-pull recorded them: cannot tell
        venv = self.root / state.generation
        try:
            # The site-packages pyvenv.cfg names, never a glob's first match: an artifact may ship
            # a lib/python3.1/site-packages decoy holding copies of every dist-info folder.
            site = site_rel(venv)
        except InstallError:
            return False
        return all(is_dir_beneath(venv, f"{site}/{name}") for name in state.dist_infos)

    def all(self) -> list[State]:
        """Return the complete generations, oldest first."""
        if not self.root.is_dir():
            return []
        states = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".") or entry.name.endswith(PARTIAL):
                continue
            state = self.read_state(entry.name)
            if state is not None:
                states.append(state)
        return sorted(states, key=lambda s: (s.created, s.generation))

    def rollback_target(self, current: str | None) -> State | None:
        """Return the generation ``rollback`` switches to from ``current``: the one it was installed
        over, else the newest other (after a rollback: the one rolled back from, which is newer)."""
        states = {s.generation: s for s in self.all()}
        live = states.get(current or "")
        if live and live.previous_generation in states and self.intact(live.previous_generation):
            return states[live.previous_generation]
        older = [s for s in states.values() if s.generation != current]
        return older[-1] if older else None

    def new_id(self, digest: str) -> str:
        """Return a free generation name: 12 hex of the digest, suffixed for rebuilds."""
        base = digest.split(":")[-1][:12]
        n = 0
        while True:
            name = base if n == 0 else f"{base}-{n}"
            if not os.path.lexists(self.root / name) and not os.path.lexists(self.root / (name + PARTIAL)):
                return name
            n += 1

    def clean_partials(self) -> list[str]:
        """Remove staging folders (and half-pruned ones) left by interrupted runs; return their names.

        Only those: a generation whose state cannot be read is unknown, never unfinished (its
        rename from ``.partial`` came after its state was written).
        """
        removed = []
        if self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.name.endswith((PARTIAL, ".doomed")) and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        return removed

    def unknown(self) -> list[str]:
        """Return the generation folders whose state cannot be read (kept, reported by status)."""
        if not self.root.is_dir():
            return []
        return sorted(
            e.name
            for e in self.root.iterdir()
            if not e.name.startswith(".")
            and not e.name.endswith(PARTIAL)
            and e.is_dir()
            and not e.is_symlink()
            and self.read_state(e.name) is None
        )

    def stage_path(self, generation: str) -> Path:
        """Return the staging folder of ``generation`` (``<id>.partial``)."""
        return self.root / (generation + PARTIAL)

    def stage(self, generation: str) -> Path:
        """Return a fresh, empty staging folder for ``generation``."""
        staging = self.stage_path(generation)
        if os.path.lexists(staging):
            shutil.rmtree(staging)
        self.root.mkdir(parents=True, exist_ok=True)
        return staging

    def write_state(self, folder: Path, state: State) -> None:
        atomic_write(folder / STATE_FILE, canonical_json(state.to_json()) + b"\n")

    def commit(self, staging: Path, generation: str) -> Path:
        """Rename a finished staging folder to its generation name (one rename)."""
        final = self.root / generation
        os.rename(staging, final)
        return final

    def adoptable(self, *, adopt: bool = False) -> bool:
        """Return whether the destination is a plain folder to move aside: True for a real venv
        (``pyvenv.cfg`` and ``bin/python``, as the original role made), False when there is nothing;
        raise InstallError for any other folder or file (never moved, never replaced), for a venv
        unless ``adopt`` (adopting is an explicit act), and for one another user owns or can write."""
        if not os.path.lexists(self.dest) or self.dest.is_symlink():
            return False
        if not self.dest.is_dir():
            raise InstallError(f"{self.dest}: exists and is neither a venv nor a symlink; refusing it")
        if (self.dest / "pyvenv.cfg").is_file() and os.path.lexists(self.dest / "bin" / "python"):
            if not adopt:
                raise InstallError(
                    f"{self.dest}: holds a venv venv-pull did not make; "
                    "pass --adopt to keep it as a generation to roll back to"
                )
            if not _roots_only(os.lstat(self.dest)):
                raise InstallError(
                    f"{self.dest}: a venv another user owns or can write is never adopted; "
                    "move it away and install again"
                )
            return True
        raise InstallError(
            f"{self.dest}: exists and is not a venv (no pyvenv.cfg and bin/python); refusing to move it aside"
        )

    def adopt_plain_dir(
        self, facts: Callable[[], tuple[Fact, ...]] = tuple, *, adopt: bool = False
    ) -> str | None:
        """Move a plain venv folder at the destination aside as a generation; return its name.

        The original role made the destination a real folder; it is kept (never deleted) so a
        rollback can return to it, and with it ``facts()``: the facts that described it.
        """
        if not self.adoptable(adopt=adopt):
            return None
        logger.info(
            "%s: a venv made without venv-pull; keeping it as a generation to roll back to", self.dest
        )
        name = time.strftime("original-%Y%m%dT%H%M%S", time.gmtime())
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / name
        os.rename(self.dest, target)
        self.write_state(
            target,
            State(
                generation=name,
                digest="",
                ref_digest="",
                reference=str(self.dest),
                name="",
                version="",
                created=target.stat().st_mtime,
                previous_digest="",
                previous_generation="",
                tools={},
                lock=(),
                blobs=(),
                facts=facts(),
                adopted=True,
            ),
        )
        # The destination is briefly missing here (a folder cannot be swapped for a symlink
        # with one rename); the caller switches to the new generation right after.
        os.symlink(f"{self.root.name}/{name}", self.dest)
        return name

    def switch(self, generation: str) -> None:
        """Point the destination at ``generation`` with one rename of a symlink."""
        if not self.intact(generation):
            raise InstallError(f"{self.root / generation}: not a complete generation")
        if os.path.lexists(self.dest) and not self.dest.is_symlink():
            raise InstallError(f"{self.dest}: exists and is not a symlink; refusing to replace it")
        tmp = self.dest.parent / f".{self.dest.name}.venvship-link-{os.getpid()}"
        if os.path.lexists(tmp):
            tmp.unlink()
        # Relative target: the pair survives moving the parent folder (containers, chroots).
        os.symlink(f"{self.root.name}/{generation}", tmp)
        os.replace(tmp, self.dest)

    def to_prune(self, keep: int) -> list[State]:
        """Return the generations :meth:`prune` would remove."""
        current = self.current_id()
        states = self.all()
        live = next((s for s in states if s.generation == current), None)
        order = [current or "", live.previous_generation if live else ""]
        order += [s.generation for s in reversed(states)]
        names = {s.generation for s in states}
        keep_ids: set[str] = set()
        for name in order:
            if name and name in names and len(keep_ids) < max(keep, 1):
                keep_ids.add(name)
        if current:
            keep_ids.add(current)
        return [s for s in states if s.generation not in keep_ids and not s.adopted]

    def prune(self, keep: int) -> list[str]:
        """Remove all but ``keep`` generations: the live one first, then the one it names as
        previous (what a rollback returns to), then the newest. Never the live one, never an
        adopted one, never one whose state cannot be read (only complete states are listed).
        """
        removed = []
        for state in self.to_prune(keep):
            # Rename first so a half-deleted generation is never mistaken for a complete one.
            doomed = self.root / f".{state.generation}.doomed"
            os.rename(self.root / state.generation, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            removed.append(state.generation)
        return removed
