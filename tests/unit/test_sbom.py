"""The SBOM of a manifest: every wheel with purl, version, sha256 and licence, the runtime distro
packages, one byte form for one manifest; checked by cyclonedx-python-lib's own validator."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from tests.integration.install.conftest import make_config, make_wheel, wheel_of

from venvship.artifact.documents import CREATED, Descriptor, Manifest
from venvship.builder.sbom import make_sbom


def test_sbom_names_licences_and_distro_packages(tmp_path: Path) -> None:
    licensed = make_wheel(
        tmp_path,
        "Licensed_Pkg",
        "2.1",
        extra={
            "Licensed_Pkg-2.1.dist-info/METADATA": "Metadata-Version: 2.4\nName: Licensed_Pkg\nVersion: 2.1\nLicense-Expression: Apache-2.0 OR MIT\n"
        },
    )
    classic = make_wheel(
        tmp_path,
        "classic",
        "1.0",
        extra={
            "classic-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: classic\nVersion: 1.0\nClassifier: License :: OSI Approved :: BSD License\n"
        },
    )
    tool = make_wheel(tmp_path, "pip", "25.0")
    config = make_config(
        lock=[wheel_of(licensed, "Licensed_Pkg"), wheel_of(classic)],
        tools=[wheel_of(tool)],
        distro="debian-12",
        distro_packages=["libxml2"],
    )
    manifest = Manifest(
        config=Descriptor(media_type="x", digest="sha256:" + "1" * 64, size=1),
        layers=(),
        annotations={CREATED: "2026-01-02T03:04:05Z"},
    )
    files = {wheel_of(p).digest: p for p in (licensed, classic, tool)}
    digest = "sha256:" + "2" * 64
    text = make_sbom(config, manifest, digest=digest, wheel_files=files)
    assert make_sbom(config, manifest, digest=digest, wheel_files=files) == text  # reproducible
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text.decode()) is None
    bom = json.loads(text)
    by_name = {c["name"]: c for c in bom["components"]}
    pkg = by_name["Licensed_Pkg"]
    assert pkg["purl"] == "pkg:pypi/licensed-pkg@2.1"
    assert pkg["hashes"] == [{"alg": "SHA-256", "content": wheel_of(licensed).sha256}]
    assert pkg["licenses"] == [{"expression": "Apache-2.0 OR MIT"}]
    assert by_name["classic"]["licenses"] == [{"license": {"name": "BSD License"}}]
    assert "licenses" not in by_name["pip"]  # its METADATA names none
    assert by_name["libxml2"]["purl"] == "pkg:deb/debian/libxml2?distro=debian-12"
    assert bom["metadata"]["timestamp"].startswith("2026-01-02T03:04:05")
    assert {d["ref"] for d in bom["dependencies"]} >= {"venv"}


def test_sbom_is_quiet_under_a_debug_root_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """nox sets the root logger to DEBUG: the serializer's per-field DEBUG lines flooded `./noxw -s build`."""
    wheel = make_wheel(tmp_path, "pkg", "1.0")
    config = make_config(lock=[wheel_of(wheel)], tools=[], distro="debian-12")
    manifest = Manifest(
        config=Descriptor(media_type="x", digest="sha256:" + "1" * 64, size=1),
        layers=(),
        annotations={CREATED: "2026-01-02T03:04:05Z"},
    )
    caplog.set_level(logging.DEBUG)
    make_sbom(config, manifest, digest="sha256:" + "2" * 64, wheel_files={wheel_of(wheel).digest: wheel})
    assert [r for r in caplog.records if r.name.startswith("py_serializable")] == []
    assert logging.getLogger("py_serializable").level == logging.NOTSET  # restored


def test_importing_the_sbom_module_is_quiet_under_a_debug_root_logger() -> None:
    """py-serializable logs each class it registers at import: a fresh interpreter shows it."""
    code = "import logging; logging.basicConfig(level=logging.DEBUG); import venvship.builder.sbom"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "py_serializable" not in proc.stderr, proc.stderr[:500]


def test_a_wheel_built_from_git_names_its_commit_in_the_purl_and_as_its_vcs(tmp_path: Path) -> None:
    import dataclasses

    gamma = make_wheel(tmp_path, "gamma", "3.0")
    sha = "1f0c" * 10
    source = f"git+https://ci:TOKEN@git.example.org/gamma.git@{sha}"
    config = dataclasses.replace(
        make_config(lock=[wheel_of(gamma)], tools=[], distro="debian-12"),
        provenance={wheel_of(gamma).filename: source},
    )
    config_desc = Descriptor(media_type="x", digest="sha256:" + "1" * 64, size=1)
    manifest = Manifest(config=config_desc, layers=(), annotations={})
    text = make_sbom(config, manifest, digest="sha256:" + "2" * 64, wheel_files={})
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text.decode()) is None
    [component] = json.loads(text)["components"]
    url = f"git+https://git.example.org/gamma.git@{sha}"  # without the credentials
    assert component["purl"] == f"pkg:pypi/gamma@3.0?vcs_url=git%2Bhttps://git.example.org/gamma.git%40{sha}"
    assert component["externalReferences"] == [{"type": "vcs", "url": url}]
    assert "TOKEN" not in text.decode()


def test_sboms_a_wheel_carries_are_referenced_and_their_components_nested(tmp_path: Path) -> None:
    """PEP 770: a wheel's ``.dist-info/sboms/`` files. A CycloneDX one names what the wheel bundles
    (here a C library, as auditwheel records it); an SPDX one is referenced only; neither may
    break the artifact's SBOM, whatever it holds."""
    bundled = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            {"type": "library", "name": "libxml2", "version": "2.13.4", "purl": "pkg:generic/libxml2@2.13.4"},
            {"type": "library", "name": "zlib", "purl": "not a purl"},
            {"name": ["not", "a", "name"]},
            "junk",
        ],
    }
    cdx, spdx = json.dumps(bundled), '{"spdxVersion": "SPDX-2.3"}'
    wheel = make_wheel(
        tmp_path,
        "lxmlish",
        "5.0",
        extra={
            "lxmlish-5.0.dist-info/sboms/auditwheel.cdx.json": cdx,
            "lxmlish-5.0.dist-info/sboms/upstream.spdx.json": spdx,
            "lxmlish/sboms/not-in-dist-info.cdx.json": cdx,
        },
    )
    config = make_config(lock=[wheel_of(wheel)], tools=[], distro="debian-12")
    manifest = Manifest(
        config=Descriptor(media_type="x", digest="sha256:" + "1" * 64, size=1),
        layers=(),
        annotations={CREATED: "2026-01-02T03:04:05Z"},
    )
    text = make_sbom(
        config, manifest, digest="sha256:" + "2" * 64, wheel_files={wheel_of(wheel).digest: wheel}
    )
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text.decode()) is None
    [pkg] = json.loads(text)["components"]
    boms = [r for r in pkg["externalReferences"] if r["type"] == "bom"]
    assert sorted(r["url"].split("#")[1] for r in boms) == [
        "lxmlish-5.0.dist-info/sboms/auditwheel.cdx.json",
        "lxmlish-5.0.dist-info/sboms/upstream.spdx.json",
    ]
    assert {r["hashes"][0]["content"] for r in boms} == {
        hashlib.sha256(cdx.encode()).hexdigest(),
        hashlib.sha256(spdx.encode()).hexdigest(),
    }
    nested = {c["name"]: c for c in pkg["components"]}
    assert set(nested) == {"libxml2", "zlib"}
    assert nested["libxml2"]["purl"] == "pkg:generic/libxml2@2.13.4"
    assert nested["libxml2"]["version"] == "2.13.4"
    assert "purl" not in nested["zlib"]
    assert nested["zlib"]["properties"] == [
        {"name": "venvship:claimed-by", "value": "lxmlish-5.0.dist-info/sboms/auditwheel.cdx.json"}
    ]


def test_a_wheel_from_a_direct_url_names_it_in_the_purl(tmp_path: Path) -> None:
    import dataclasses

    delta = make_wheel(tmp_path, "delta", "4.0")
    url = "https://files.example.org/delta-4.0.tar.gz"
    config = dataclasses.replace(
        make_config(lock=[wheel_of(delta)], tools=[], distro="debian-12"),
        download_urls={wheel_of(delta).filename: url},
    )
    manifest = Manifest(
        config=Descriptor(media_type="x", digest="sha256:" + "1" * 64, size=1), layers=(), annotations={}
    )
    text = make_sbom(config, manifest, digest="sha256:" + "2" * 64, wheel_files={})
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text.decode()) is None
    [component] = json.loads(text)["components"]
    assert component["purl"] == "pkg:pypi/delta@4.0?download_url=https://files.example.org/delta-4.0.tar.gz"
    assert component["externalReferences"] == [{"type": "distribution", "url": url}]
