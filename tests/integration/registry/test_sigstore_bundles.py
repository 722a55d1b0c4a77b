"""Sigstore bundles through a real registry: Debian's docker-registry 2.8 has no referrers API, so
the bundle referrers go through the ``sha256-<hex>`` fallback tag, as cosign v3 writes them there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sigstore_models.bundle.v1 import Bundle as SchemaBundle

from tests.signing import make_key, write_policy
from venvship.artifact.sigbundle import (
    BUNDLE_TYPE,
    CONTENT_ANNOTATION,
    COSIGN_SIGN_PREDICATE,
    PREDICATE_ANNOTATION,
)
from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.referrers import referrers_tag

from ._support import RegistryServer, client_for
from .test_signatures import Cli, _artifact, _install_argv
from .test_signatures import cli as _cli

cli = _cli  # the fixture, under the name tests ask for

pytestmark = pytest.mark.registry


def test_bundle_signed_publish_installs_and_vouches(
    open_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    host = open_registry.host
    key = make_key(tmp_path / "keys", "release")
    stranger = make_key(tmp_path / "keys", "stranger")
    layout = _artifact(tmp_path / "a", tool_wheels)
    argv = ["publish", f"oci:{layout.root}", f"{host}/bundles", "--sign-key", str(key.private)]
    code, out, err = cli(venvship_main.main, [*argv, "--signature-format", "bundle"], open_registry)
    assert code == 0, err

    client = client_for(open_registry)
    index = client.check_tag("bundles/demo", "1.0")
    assert index is not None and referrers_tag(index) in client.list_tags("bundles/demo")
    [entry] = client.referrers("bundles/demo", index)
    # The list entry says what the referrer is, as cosign's BUNDLE_SPEC.md has it.
    assert entry.artifact_type == BUNDLE_TYPE
    assert entry.annotations[CONTENT_ANNOTATION] == "dsse-envelope"
    assert entry.annotations[PREDICATE_ANNOTATION] == COSIGN_SIGN_PREDICATE
    doc = json.loads(client.get_manifest("bundles/demo", entry.digest)[1])
    assert doc["subject"]["digest"] == index and len(doc["layers"]) == 1
    SchemaBundle.from_json(client.get_blob_bytes("bundles/demo", doc["layers"][0]["digest"]))

    policy = write_policy(tmp_path / "policy.toml", {f"{host}/bundles": [key.public]})
    install = _install_argv(tmp_path, f"{host}/bundles/demo:1.0", policy)
    code, out, err = cli(venv_pull_main.main, install, open_registry)
    assert code == 0, err
    assert json.loads(out)["changed"] is True

    # A signing job trusts what its key signed in either format: a simple signature is added
    # without --vouch-unverified.
    code, out, err = cli(
        venvship_main.main, ["sign", f"{host}/bundles/demo:1.0", "--key", str(key.private)], open_registry
    )
    assert code == 0 and "signed 2 digest(s)" in out, err
    assert len(client.referrers("bundles/demo", index)) == 2

    # Another key's bundle alone is refused in one line; the live venv stays.
    other = _artifact(tmp_path / "b", tool_wheels, body="OTHER = True")
    argv = ["publish", f"oci:{other.root}", f"{host}/bundles", "--sign-key", str(stranger.private)]
    assert cli(venvship_main.main, [*argv, "--signature-format", "bundle"], open_registry)[0] == 0
    live = (tmp_path / "venvs" / "demo").resolve()
    code, out, err = cli(venv_pull_main.main, install, open_registry)
    assert code == 1
    [line] = err.strip().splitlines()
    assert "found a Sigstore bundle by key sha256:" in line and "which the policy does not trust" in line
    assert (tmp_path / "venvs" / "demo").resolve() == live
