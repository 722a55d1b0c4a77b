"""``venv-pull status``, ``rollback``, ``verify`` and ``prune``: the commands on installed
generations (install/maintenance.py)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Dict

from ..errors import VenvshipError
from .outcome import json_text

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..install.drift import Drift

    _Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

# What a logged command tells the log about its run (runlog.Entry's fields).
LogFields = Dict[str, object]


def _emit(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    print(json_text(data) if args.json else text)


def status(args: argparse.Namespace) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

    if args.packages:
        return _packages(args)
    items = maintenance.status(args.dest, cache=args.cache, hashes=args.hashes)
    data = [
        {
            "dest": s.dest,
            "current": s.current,
            "generations": [
                {"generation": g.generation, "digest": g.digest, "version": g.version, "created": g.created}
                for g in s.generations
            ],
            "drift": s.drift.to_json(),
            "rollback_to": s.rollback_to,
            "family": s.family,
        }
        for s in items
    ]
    lines = []
    families: dict[tuple[str, str], list[str]] = {}  # a family's releases share a folder
    for s in items:
        if s.family:
            families.setdefault((os.path.dirname(s.dest), s.family), []).append(s.dest)
    for s in items:
        members = families.get((os.path.dirname(s.dest), s.family), [])
        if args.dest is None and len(members) > 1 and members[0] == s.dest:
            lines.append(f"release family {s.family} (newest first): {', '.join(members)}")
        lines.append(f"{s.dest}: {_drift_text(s.drift)}")
        for g in s.generations:
            mark = "*" if g.generation == s.current else "<" if g.generation == s.rollback_to else " "
            lines.append(f" {mark} {g.generation}  {g.name} {g.version}  {g.digest or '(adopted)'}")
    if args.json:
        print(json_text({"venvs": data, "cache": str(args.cache)} if args.dest is None else data[0]))
    else:
        print("\n".join(lines) or f"no venvs installed (none recorded in the cache {args.cache})")
    return 0


def _packages(args: argparse.Namespace) -> int:
    from ..install.packages import live_packages

    if args.dest is None:
        raise VenvshipError("status --packages: name the venv, venv-pull status DEST --packages")
    generation, packages = live_packages(args.dest)
    data: dict[str, object] = {
        "dest": str(args.dest),
        "generation": generation,
        "packages": [{"name": p.name, "version": p.version} for p in packages],
    }
    _emit(args, data, "\n".join(p.freeze() for p in packages))
    return 0


def _drift_text(drift: Drift) -> str:
    if drift.link != "ok":
        return f"drift: link {drift.link}"
    how = "by hash" if drift.hashed else "by size"
    if not drift.drifted:
        text = f"no drift (files compared {how})"
    else:
        files = f"{len(drift.drifted)} of {drift.checked} files"
        text = f"drift: {files} differ from RECORD ({how}; verify lists them)"
    return text + _shared_text(drift.shared)


def _shared_text(count: int) -> str:
    """Return the warning for a venv whose files are hard links shared with other venvs ("" for none)."""
    if not count:
        return ""
    return (
        f"; {count} files shared with other venvs by hard links (an edit here changes them too):"
        " install --rebuild gives this venv its own"
    )


def rollback(args: argparse.Namespace, log: LogFields) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

    log.update(dest=str(args.dest), cache=str(args.cache))
    r = maintenance.rollback(args.dest, facts_dir=args.facts_dir, lock_timeout=args.lock_timeout)
    log.update(
        digest=r.digest,
        previous_digest=r.previous_digest,
        outcome="changed",
        details={"generation": r.generation, "previous": r.previous, "forward": r.forward},
    )
    data = {
        "changed": True,
        "dest": r.dest,
        "generation": r.generation,
        "previous": r.previous,
        "digest": r.digest,
        "facts_written": r.facts_written,
        "forward": r.forward,
    }
    how = "rolled forward (undoing the last rollback)" if r.forward else "rolled back"
    _emit(args, data, f"{r.dest}: {how} from {r.previous} to {r.generation}")
    return 0


def verify(args: argparse.Namespace) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

    r = maintenance.verify(args.dest, cache=args.cache)
    data = {
        "dest": r.dest,
        "generation": r.generation,
        "checked": r.checked,
        "drifted": list(r.drifted),
        "shared": list(r.shared),
    }
    text = f"{r.dest}: {r.checked} files checked, {len(r.drifted)} drifted" + _shared_text(len(r.shared))
    _emit(args, data, "\n".join([text, *r.drifted]))
    return 1 if r.drifted else 0


def prune(args: argparse.Namespace, log: LogFields) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

    log.update(cache=str(args.cache))
    r = maintenance.prune(
        cache=args.cache, keep=args.keep, keep_releases=args.keep_releases, lock_timeout=args.lock_timeout
    )
    changed = bool(r.generations or r.blobs or r.releases)
    details: dict[str, object] = {"generations": list(r.generations), "blobs": len(r.blobs)}
    data: dict[str, object] = {
        "cache": str(args.cache),
        "generations": list(r.generations),
        "blobs": len(r.blobs),
    }
    text = f"{args.cache}: pruned {len(r.generations)} generations, {len(r.blobs)} cache blobs"
    if args.keep_releases is not None:
        data.update(releases=list(r.releases), in_use=list(r.in_use))
        details["releases"] = list(r.releases)
        text += f", {len(r.releases)} release folders"
        text += "".join(f"\nremoved release {dest}" for dest in r.releases)
        text += "".join(f"\nkept release {why}" for why in r.in_use)
    log.update(outcome="changed" if changed else "unchanged", details=details)
    _emit(args, data, text)
    return 0
