"""``venv-pull status DEST --packages``: what the live generation of a venv holds, read from its
``*.dist-info/METADATA`` files (a venv made by venv-pull has no pip to ask). Stdlib only.

Runs as root over files an artifact wrote: nothing is imported or run, symlinks are not followed
(a dist-info folder or METADATA that is a link, or a site-packages outside the generation, is
skipped), and a METADATA file is read up to a size limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from ..errors import InstallError
from .generations import Generations

MAX_METADATA = 1 << 20  # the headers come first; a longer file is read this far only


@dataclass(frozen=True)
class Package:
    """One installed distribution."""

    name: str
    version: str

    def freeze(self) -> str:
        """Return the ``pip freeze`` line: ``name==version``."""
        return f"{self.name}=={self.version}"


def live_packages(dest: Path) -> tuple[str, tuple[Package, ...]]:
    """Return the live generation of ``dest`` and its distributions, sorted by name.

    Example: ``live_packages(Path("/opt/venvs/demo"))`` → ``("6f1c0d2e4a7b", (Package("alpha", "1.0"), …))``
    """
    gens = Generations(dest)
    current = gens.current_id()
    if current is None:
        raise InstallError(f"{gens.dest}: not a venv installed by venv-pull (no link to a generation)")
    root = os.path.realpath(gens.path(current))
    found: list[Package] = []
    for site in sorted(Path(root).glob("lib/python3*/site-packages")):
        if os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(site)))) != root:
            continue  # lib/ or site-packages is a link out of the generation
        with os.scandir(site) as entries:
            for entry in entries:
                if entry.name.endswith(".dist-info") and entry.is_dir(follow_symlinks=False):
                    package = _read(Path(entry.path) / "METADATA")
                    if package is not None:
                        found.append(package)
    return current, tuple(sorted(set(found), key=lambda p: (p.name.lower(), p.version)))


def _read(path: Path) -> Package | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None  # missing, or a link: not this venv's own
    with os.fdopen(fd, "rb") as f:
        headers = BytesHeaderParser().parsebytes(f.read(MAX_METADATA))
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    return Package(name=_printable(str(name)), version=_printable(str(version)))


def _printable(text: str) -> str:
    # What an artifact wrote reaches a terminal: no control characters.
    return "".join(c if c.isprintable() else "?" for c in text.strip())
