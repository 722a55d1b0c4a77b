"""A recipe's PEP 751 lock (``lock = "pylock.toml"``): read with ``packaging.pylock`` and held to
what venvship needs from it, with errors that name the file and the key path.

A lock replaces the resolve: its packages, each with a sha256 that every file is checked against,
are the closure. So every archive must carry a sha256 (the spec lets a lock carry other hashes
only), every package from an index a version (each built wheel is checked against it), and a local directory,
which nothing pins, is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ..errors import RecipeError
from .tablereader import load_toml

if TYPE_CHECKING:
    from packaging.pylock import PackageArchive, PackageSdist, PackageWheel, Pylock

    LockedFile = Union[PackageWheel, PackageSdist, PackageArchive]


@dataclass(frozen=True)
class LockFile:
    """A validated PEP 751 lock and where it is (relative paths in it are taken beside it)."""

    path: Path
    lock: Pylock
    sha256: str  # of the file: what decides whether a build changed

    @property
    def folder(self) -> Path:
        return self.path.parent


def _hash_problems(lock: Pylock) -> list[tuple[str, str]]:
    """Return (key path, fault) for every package venvship cannot take as the lock gives it."""
    faults: list[tuple[str, str]] = []
    for i, package in enumerate(lock.packages):
        where = f"packages[{i}]"
        if package.directory is not None:
            faults.append((f"{where}.directory", f"{package.name}: a local directory is pinned by no hash"))
        # A VCS checkout or an archive URL may come without one (pip lock writes none): the
        # build reads it from the source's metadata.
        if package.version is None and package.vcs is None and package.archive is None:
            faults.append(
                (f"{where}.version", f"{package.name}: no version (venvship checks each wheel against it)")
            )
        files: list[tuple[str, LockedFile]] = [
            (f"{where}.wheels[{n}]", w) for n, w in enumerate(package.wheels or ())
        ]
        if package.sdist is not None:
            files.append((f"{where}.sdist", package.sdist))
        if package.archive is not None:
            files.append((f"{where}.archive", package.archive))
        for key, item in files:
            if "sha256" not in item.hashes:
                faults.append(
                    (f"{key}.hashes", f"{package.name}: no sha256 (venvship checks every file by it)")
                )
    return faults


def read_lock(path: Path) -> LockFile:
    """Return the PEP 751 lock at ``path``; raise RecipeError naming the file and key at fault.

    Example: ``read_lock(Path("recipes/pylock.toml")).lock.packages``
    """
    try:
        # packaging 26.1 (Python 3.10+) reads and selects from PEP 751 locks; imported here so
        # that venvship on Python 3.9 runs every recipe but those that name a lock.
        from packaging.pylock import Pylock, PylockValidationError
    except ImportError as exc:
        raise RecipeError(
            f"{path}",
            "reading a pylock.toml needs packaging 26.1 or later (and Python 3.10+) where venvship runs",
        ) from exc
    try:
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        sha256 = ""  # load_toml says why it cannot be read
    data = load_toml(path)
    try:
        lock = Pylock.from_dict(data)
    except PylockValidationError as exc:
        raise RecipeError(f"{path}: {exc.context or 'lock-version'}", exc.message) from exc
    faults = _hash_problems(lock)
    if faults:
        key, message = faults[0]
        raise RecipeError(f"{path}: {key}", message)
    return LockFile(path=path, lock=lock, sha256=sha256)


__all__ = ["LockFile", "read_lock"]
