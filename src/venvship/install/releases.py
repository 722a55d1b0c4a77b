"""Release families (#22): one service's venvs across releases, as OpenStack-Ansible lays them out
(``/openstack/venvs/keystone-30.0.0``, ``…/keystone-31.0.0``): each release a destination of its
own, one family by the recipe's name that their generations' states record. A destination is a
release of family NAME only if its folder is named NAME or NAME-something (``keystone-30.0.0``),
and a family's releases share one parent folder: an artifact decides its recipe name, so a name
alone must never make another service's venv (``glance-31.0.0`` from an artifact calling itself
keystone) a release of keystone, nor a newer one that pushes keystone's releases out.

A family's releases are ordered by when venv-pull last installed into each (the newest generation
of each destination), not by their version strings: the release an operator installed last is the
newest, whatever it is called. ``prune --keep-releases N`` removes a family's oldest destinations
beyond N, each with all its generations, but never one that is in use: one that a symlink beside
it points at (``keystone`` → ``keystone-30.0.0``) or that a running process runs from (its
executable, working directory, command line or a file it has mapped, such as an extension
module, lies in the destination or its generations). A process is how a live service shows that
it still needs a release; its systemd unit alone does not keep it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .._fsutil import file_lock
from .._log import logger
from ..host import trust
from .generations import Generations


@dataclass(frozen=True)
class Release:
    """One destination of a family: its recipe name, live version and last install time."""

    dest: Path
    family: str
    version: str
    installed: float


def release_of(dest: Path) -> Release | None:
    """Return the release ``dest`` holds, or None when no generation of it names a recipe."""
    gens = Generations(dest)
    states = [s for s in gens.all() if s.name and not s.adopted]
    if not states:
        return None
    current = gens.current_id()
    live = next((s for s in states if s.generation == current), states[-1])
    if gens.dest.name != live.name and not gens.dest.name.startswith(f"{live.name}-"):
        return None  # a folder not named after the recipe: a venv of its own, in no family
    return Release(dest=gens.dest, family=live.name, version=live.version, installed=states[-1].created)


def families(dests: Iterable[Path]) -> dict[tuple[str, str], list[Release]]:
    """Return the releases of ``dests`` by family (parent folder, recipe name), newest first."""
    out: dict[tuple[str, str], list[Release]] = {}
    for dest in dests:
        release = release_of(dest)
        if release is not None:
            out.setdefault((str(release.dest.parent), release.family), []).append(release)
    for releases in out.values():
        releases.sort(key=lambda r: (r.installed, str(r.dest)), reverse=True)
    return dict(sorted(out.items()))


def in_use(dest: Path, *, proc: Path = Path("/proc")) -> str:
    """Return what still uses ``dest`` (a symlink beside it, a running process), or "" if nothing."""
    gens = Generations(dest)
    inside = (f"{gens.dest}/", f"{gens.root}/")

    def within(path: str) -> bool:
        return path in (str(gens.dest), str(gens.root)) or path.startswith(inside)

    try:
        beside = list(os.scandir(gens.dest.parent))
    except OSError:
        beside = []
    for entry in beside:
        if entry.path == str(gens.dest) or not entry.is_symlink():
            continue
        target = os.path.join(gens.dest.parent, os.readlink(entry.path))
        if within(os.path.normpath(target)):
            return f"the symlink {entry.path} points at it"
    for pid, path in _process_paths(proc):
        if within(path):
            return f"process {pid} runs from it ({path})"
    return ""


def _process_paths(proc: Path) -> Iterator[tuple[int, str]]:
    """Yield (pid, path) for each path a running process uses: executable, working directory,
    command-line arguments and mapped files (processes that vanish or hide are skipped)."""
    try:
        pids = [int(n) for n in os.listdir(proc) if n.isdigit()]
    except OSError:
        return
    for pid in pids:
        if pid == os.getpid():
            continue
        base = proc / str(pid)
        paths: list[str] = []
        for link in ("exe", "cwd"):
            with contextlib.suppress(OSError):
                paths.append(os.readlink(base / link))
        try:
            paths += [a.decode(errors="replace") for a in (base / "cmdline").read_bytes().split(b"\0") if a]
            for line in (base / "maps").read_bytes().splitlines():
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith(b"/"):
                    paths.append(fields[5].decode(errors="replace"))
        except OSError:
            pass
        for path in paths:
            yield pid, path.removesuffix(" (deleted)")


@dataclass(frozen=True)
class ReleasePrune:
    """Release folders removed, and those kept beyond the count because something uses them."""

    removed: tuple[str, ...]
    in_use: tuple[str, ...]


def prune_releases(dests: Iterable[Path], *, keep: int, lock_timeout: float | None) -> ReleasePrune:
    """Remove every family's oldest releases beyond the newest ``keep`` (at least 1), unless in use."""
    removed: list[str] = []
    kept: list[str] = []
    for releases in families(dests).values():
        for release in releases[max(keep, 1) :]:
            why = in_use(release.dest)
            if why:
                kept.append(f"{release.dest}: {why}")
                continue
            if remove_release(release.dest, lock_timeout=lock_timeout):
                removed.append(str(release.dest))
    return ReleasePrune(removed=tuple(removed), in_use=tuple(kept))


def remove_release(dest: Path, *, lock_timeout: float | None) -> bool:
    """Remove destination ``dest`` and all its generations; return False (and leave both) when the
    destination is not venv-pull's symlink (a folder or a file someone made is never removed)."""
    gens = Generations(dest)
    trust.check_existing(
        [(gens.dest.parent, "the destination's folder"), (gens.root, "the generations folder")]
    )
    with file_lock(gens.lock_path, timeout=lock_timeout):
        if os.path.lexists(gens.dest):
            if not gens.dest.is_symlink() or gens.current_id() is None:
                logger.warning("%s: not a symlink into its generations; release kept", gens.dest)
                return False
            os.unlink(gens.dest)
        # Renamed first: a half-removed folder is never taken for generations; the next prune or
        # install never reads it (it is no destination's), and removing it again is harmless.
        doomed = gens.root.with_name(f"{gens.root.name}.removed-{os.getpid()}")
        os.rename(gens.root, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    logger.info("%s: release removed with its generations", gens.dest)
    return True
