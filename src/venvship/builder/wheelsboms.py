"""The SBOMs a wheel carries (PEP 770: files in ``NAME-VERSION.dist-info/sboms/``), read for the
artifact's SBOM: each one referenced by its path and sha256, and the components a CycloneDX JSON
one lists (the libraries a wheel bundles, such as those auditwheel vendors) taken as they are named.

A wheel is untrusted input: what its SBOM says is recorded as the wheel's claim, within bounds
(a few files, a few MiB, a thousand components), and a file that is not CycloneDX JSON is only
referenced.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packageurl import PackageURL

MAX_FILES = 16
MAX_BYTES = 4 << 20  # per SBOM file
MAX_COMPONENTS = 1000  # per wheel


@dataclass(frozen=True)
class Claimed:
    """A component a wheel's SBOM names (the fields venvship carries over)."""

    name: str
    version: str | None
    purl: PackageURL | None
    source: str  # the SBOM file, as ``…dist-info/sboms/FILE``


@dataclass(frozen=True)
class WheelSbom:
    """One SBOM file found in a wheel."""

    member: str  # its path in the wheel
    sha256: str
    components: tuple[Claimed, ...]  # empty unless it is CycloneDX JSON


def wheel_sboms(path: Path) -> tuple[WheelSbom, ...]:
    """Return the SBOM files of the wheel at ``path`` (none when it carries none or cannot be read).

    Example: ``[s.member for s in wheel_sboms(Path("lxml-5.3.0-….whl"))]``
    """
    try:
        with zipfile.ZipFile(path) as zf:
            members = [
                info
                for info in zf.infolist()
                if not info.is_dir() and _in_sboms_folder(info.filename) and info.file_size <= MAX_BYTES
            ][:MAX_FILES]
            found = [(info.filename, zf.read(info)) for info in members]
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return ()
    out = []
    budget = MAX_COMPONENTS
    for member, data in sorted(found):
        if len(data) > MAX_BYTES:  # the size the zip claimed was not the size it held
            continue
        components = _cyclonedx_components(data, member)[:budget]
        budget -= len(components)
        out.append(WheelSbom(member=member, sha256=hashlib.sha256(data).hexdigest(), components=components))
    return tuple(out)


def _in_sboms_folder(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 3 and parts[0].endswith(".dist-info") and parts[1] == "sboms" and bool(parts[2])


def _cyclonedx_components(data: bytes, member: str) -> tuple[Claimed, ...]:
    """Return the top-level components a CycloneDX JSON document lists; () for anything else."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return ()
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        return ()
    listed = doc.get("components")
    out = []
    for item in listed[:MAX_COMPONENTS] if isinstance(listed, list) else ():
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            continue
        version = item.get("version")
        purl_text = item.get("purl")
        out.append(
            Claimed(
                name=name,
                version=version if isinstance(version, str) and len(version) <= 200 else None,
                purl=_purl(purl_text) if isinstance(purl_text, str) else None,
                source=member,
            )
        )
    return tuple(out)


def _purl(text: str) -> PackageURL | None:
    try:
        return PackageURL.from_string(text) if len(text) <= 1000 else None
    except ValueError:
        return None
