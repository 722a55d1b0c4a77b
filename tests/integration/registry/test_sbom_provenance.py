"""Every built manifest carries a CycloneDX 1.6 SBOM and an in-toto provenance statement as
referrers; ``sign`` signs the provenance with the manifests' key; both travel to a registry."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.signing import make_key
from venvship.artifact.sigformat import (
    DSSE_TYPE,
    INTOTO_TYPE,
    SBOM_TYPE,
    dsse_pae,
    dsse_statement,
    parse_referrer,
)
from venvship.cli import venvship_main
from venvship.oci.attach import LayoutStore
from venvship.oci.layout import Layout

from ._support import RegistryServer
from .conftest import BuiltDemo

pytestmark = pytest.mark.registry


def test_sbom_lists_the_lock_and_validates(built_demo: BuiltDemo, capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"oci:{built_demo.layout.root}:{built_demo.platform_ref}"
    assert venvship_main.main(["sbom", ref]) == 0
    text = capsys.readouterr().out
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6"
    config = built_demo.config()
    by_purl = {c.get("purl"): c for c in bom["components"]}
    for wheel in (*config.lock, *config.tools):
        component = by_purl[f"pkg:pypi/{wheel.name.lower()}@{wheel.version}"]
        assert component["version"] == wheel.version
        assert component["hashes"] == [{"alg": "SHA-256", "content": wheel.sha256}]
    # The installer's wheel says its licence; the tests' tiny packages say none.
    [tool] = [c for c in bom["components"] if c["name"].lower() == config.install_tool]
    assert tool["licenses"]
    digest = built_demo.layout.resolve(built_demo.platform_ref).digest
    assert bom["metadata"]["component"]["purl"] == f"pkg:oci/demo@{digest}"
    # The index names one platform here: its SBOM is that platform's.
    assert venvship_main.main(["sbom", f"oci:{built_demo.layout.root}:demo:1.0"]) == 0
    assert capsys.readouterr().out == text


def test_provenance_signed_and_published(
    built_demo: BuiltDemo, tmp_path: Path, open_registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "oci"
    shutil.copytree(built_demo.layout.root, root)  # the session's layout stays unsigned
    store = LayoutStore(Layout(root), "demo")
    digest = store.get_manifest(built_demo.platform_tag)[0].digest
    statement = json.loads(_provenance(store, digest)[0])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [
        {"name": built_demo.platform_ref, "digest": {"sha256": digest.split(":")[1]}}
    ]
    definition = statement["predicate"]["buildDefinition"]
    recipe_sha = hashlib.sha256(built_demo.recipe.read_bytes()).hexdigest()
    assert definition["externalParameters"]["recipe"]["digest"] == {"sha256": recipe_sha}
    assert definition["internalParameters"]["inputs_digest"] == built_demo.config().recipe_digest
    builder = statement["predicate"]["runDetails"]["builder"]["version"]
    assert builder["venvship"] and "pip" in builder

    key = make_key(tmp_path / "keys", "release")
    assert venvship_main.main(["sign", f"oci:{root}:demo:1.0", "--key", str(key.private)]) == 0
    raw, sigs = _provenance(store, digest)
    [(_, sig)] = sigs
    (tmp_path / "pae").write_bytes(dsse_pae(INTOTO_TYPE, raw))
    (tmp_path / "sig").write_bytes(sig)
    proc = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            key.public,
            "-signature",
            tmp_path / "sig",
            tmp_path / "pae",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == "Verified OK"

    host = open_registry.host
    assert venvship_main.main(["publish", f"oci:{root}:demo:1.0", f"{host}/evidence", "--insecure"]) == 0
    assert "referrers copied" in capsys.readouterr().out
    assert venvship_main.main(["sbom", f"{host}/evidence/demo@{digest}", "--insecure"]) == 0
    assert json.loads(capsys.readouterr().out)["specVersion"] == "1.6"


def _provenance(store: LayoutStore, digest: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Return the statement and signatures of the last provenance attached to ``digest``."""
    found: list[tuple[bytes, list[tuple[str, bytes]]]] = []
    kinds = set()
    for entry in store.referrers(digest):
        referrer = parse_referrer(store.get_manifest(entry.digest)[1], where="referrer")
        kinds.add(referrer.artifact_type)
        if referrer.artifact_type == INTOTO_TYPE:
            [layer] = referrer.layers
            assert layer.media_type == DSSE_TYPE
            found.append(dsse_statement(store.blob(layer), where="envelope"))
    assert {SBOM_TYPE, INTOTO_TYPE} <= kinds
    return found[-1]
