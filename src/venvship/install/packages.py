"""``venv-pull status DEST --packages``: what the live generation of a venv holds, read from its
``*.dist-info/METADATA`` files (a venv made by venv-pull has no pip to ask). Stdlib only.

Runs as root over files an artifact wrote: nothing is imported or run, only the site-packages
that pyvenv.cfg names is read, symlinks are not followed (a dist-info folder or METADATA that is a
link, or reached through one, is skipped), and a METADATA file is read up to a size limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from ..errors import InstallError
from ..venvformat.files import dist_info_folders, open_beneath, read_beneath, site_rel
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
    venv = gens.path(current)
    # The site-packages pyvenv.cfg names, never every lib/python3*/site-packages: an artifact may
    # ship a decoy one, listing distributions the venv does not hold.
    site = site_rel(venv)
    try:
        fd = open_beneath(venv, site, directory=True)
    except OSError as exc:
        raise InstallError(f"{venv / site}: cannot read ({exc.strerror or exc})") from exc
    try:
        names = dist_info_folders(fd)
    finally:
        os.close(fd)
    found = [p for p in (_read(venv, f"{site}/{n}/METADATA") for n in names) if p is not None]
    return current, tuple(sorted(set(found), key=lambda p: (p.name.lower(), p.version)))


def _read(venv: Path, rel: str) -> Package | None:
    try:
        data = read_beneath(venv, rel, limit=MAX_METADATA)
    except OSError:
        return None  # missing, a link, or through one: not this venv's own
    headers = BytesHeaderParser().parsebytes(data[:MAX_METADATA])
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    return Package(name=_printable(str(name)), version=_printable(str(version)))


def _printable(text: str) -> str:
    # What an artifact wrote reaches a terminal: no control characters.
    return "".join(c if c.isprintable() else "?" for c in text.strip())
