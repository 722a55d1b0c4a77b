"""A CycloneDX 1.6 JSON SBOM of one per-platform manifest, made with cyclonedx-python-lib.

It lists every wheel the artifact carries (the lock, then the installer tool's) with its purl,
version, the sha256 of the wheel and its licence where the wheel's metadata names one (and the
SBOMs a wheel carries, PEP 770: referenced, their components nested under the wheel), and the
runtime distro packages the target installs (deb, rpm or apk purls, no version: the target's
repositories decide it). Same inputs, same bytes: the time is the manifest's ``created`` and the
serial number is derived from the manifest digest.
"""

from __future__ import annotations

import contextlib
import email.parser
import logging
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Mapping
from urllib.parse import quote

from packageurl import PackageURL
from packaging.utils import canonicalize_name

from .. import __version__
from ..artifact.documents import CREATED, Manifest, VenvConfig, Wheel
from ..redact import redact_url
from .wheelsboms import Claimed, WheelSbom, wheel_sboms


@contextlib.contextmanager
def _quiet_serializer() -> Iterator[None]:
    """Keep py-serializable's DEBUG lines (one per field of every class, at import and at each
    dump: over a thousand for one build) from a root logger at DEBUG, as in a nox session."""
    log = logging.getLogger("py_serializable")
    level = log.level
    log.setLevel(max(level, logging.INFO))
    try:
        yield
    finally:
        log.setLevel(level)


with _quiet_serializer():
    from cyclonedx.model import (
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        Property,
        XsUri,
    )
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output.json import JsonV1Dot6

    try:  # where cyclonedx-python-lib keeps it since 11.x; the old place warns
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # pragma: no cover - older releases
        from cyclonedx.factory.license import LicenseFactory

_PURL_TYPES = {"debian": "deb", "ubuntu": "deb", "alpine": "apk"}  # every other family: rpm


def make_sbom(
    config: VenvConfig, manifest: Manifest, *, digest: str, wheel_files: Mapping[str, Path]
) -> bytes:
    """Return the SBOM (CycloneDX 1.6 JSON) of the manifest ``digest`` holding ``config``.

    ``wheel_files`` maps wheel digests to local files, read for their licence metadata.

    Example: ``make_sbom(config, manifest, digest=packaged.digest, wheel_files=files)``
    """
    root = Component(
        type=ComponentType.APPLICATION,
        name=config.name,
        version=config.version,
        bom_ref="venv",
        purl=PackageURL(type="oci", name=config.name, version=digest),
        properties=[Property(name="venvship:platform", value=config.platform_key)],
    )
    components = [
        *(
            _wheel(
                w,
                wheel_files.get(w.digest),
                role="lock",
                vcs=config.vcs_source(w.filename),
                download=config.download_urls.get(w.filename),
            )
            for w in config.lock
        ),
        *(_wheel(w, wheel_files.get(w.digest), role="installer") for w in config.tools),
        *(_distro_package(name, config) for name in config.install_distro_packages),
    ]
    tool = Component(type=ComponentType.APPLICATION, name="venvship", version=__version__)
    created = manifest.annotations.get(CREATED)
    metadata = BomMetaData(
        component=root,
        tools=ToolRepository(components=[tool]),
        timestamp=_parse_time(created) if created else None,
    )
    bom = Bom(components=components, metadata=metadata, serial_number=uuid.uuid5(uuid.NAMESPACE_URL, digest))
    bom.register_dependency(root, components)
    with _quiet_serializer():
        return JsonV1Dot6(bom).output_as_string(indent=2).encode()


def _wheel(
    wheel: Wheel, path: Path | None, *, role: str, vcs: str | None = None, download: str | None = None
) -> Component:
    # Built from a VCS commit or a direct URL, not taken from an index: the purl says where from
    # (purl-spec's vcs_url and download_url qualifiers), so a scanner does not match it against
    # PyPI's release of that version.
    source = redact_url(vcs) if vcs else None
    qualifiers = {"vcs_url": source} if source else {"download_url": download} if download else None
    carried = wheel_sboms(path) if path is not None else ()
    references = [ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(source))] if source else []
    if download and not source:
        references.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(download)))
    references += [_carried_sbom(wheel, s) for s in carried]
    return Component(
        type=ComponentType.LIBRARY,
        name=wheel.name,
        version=wheel.version,
        bom_ref=f"wheel:{wheel.sha256}",
        purl=PackageURL(
            type="pypi", name=canonicalize_name(wheel.name), version=wheel.version, qualifiers=qualifiers
        ),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=wheel.sha256)],
        licenses=_licenses(path) if path is not None else (),
        external_references=references,
        properties=[
            Property(name="venvship:wheel", value=wheel.filename),
            Property(name="venvship:role", value=role),
        ],
        components=[_claimed(wheel, c, n) for n, c in enumerate(c for s in carried for c in s.components)],
    )


def _carried_sbom(wheel: Wheel, sbom: WheelSbom) -> ExternalReference:
    """Reference an SBOM a wheel carries (PEP 770) by its place in the wheel and its sha256."""
    return ExternalReference(
        type=ExternalReferenceType.BOM,
        url=XsUri(f"{quote(wheel.filename)}#{quote(sbom.member)}"),
        comment="an SBOM the wheel carries (PEP 770)",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sbom.sha256)],
    )


def _claimed(wheel: Wheel, claimed: Claimed, n: int) -> Component:
    """A component a wheel's own SBOM names (a library it bundles), nested under the wheel."""
    return Component(
        type=ComponentType.LIBRARY,
        name=claimed.name,
        version=claimed.version,
        purl=claimed.purl,
        bom_ref=f"wheel:{wheel.sha256}:sbom:{n}",
        properties=[Property(name="venvship:claimed-by", value=claimed.source)],
    )


def _distro_package(name: str, config: VenvConfig) -> Component:
    family = config.platform.distro.split("-", 1)[0]
    return Component(
        type=ComponentType.LIBRARY,
        name=name,
        bom_ref=f"distro:{name}",
        purl=PackageURL(
            type=_PURL_TYPES.get(family, "rpm"),
            namespace=family,
            name=name,
            qualifiers={"distro": config.platform.distro},
        ),
        properties=[Property(name="venvship:role", value="runtime distro package")],
    )


def _licenses(path: Path) -> Iterable[LicenseExpression | DisjunctiveLicense]:
    """Return the licence a wheel's METADATA names: License-Expression, else a one-line License,
    else its ``License ::`` classifiers; nothing when it names none."""
    try:
        with zipfile.ZipFile(path) as zf:
            name = next(
                (n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None
            )
            text = zf.read(name).decode("utf-8", "replace") if name else ""
    except (OSError, zipfile.BadZipFile):
        return ()
    meta = email.parser.Parser().parsestr(text, headersonly=True)
    factory = LicenseFactory()
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return [factory.make_from_string(expression)]
    plain = (meta.get("License") or "").strip()
    if plain and "\n" not in plain and len(plain) <= 100 and plain.upper() != "UNKNOWN":
        return [factory.make_from_string(plain)]
    classifiers = [
        c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or () if c.startswith("License ::")
    ]
    return [factory.make_with_name(c) for c in classifiers]


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
