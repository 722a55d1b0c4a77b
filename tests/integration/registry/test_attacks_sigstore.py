"""The broken-signature attack through a real registry (distribution 2.8, the ``sha256-<hex>``
fallback tag): whoever can push lists, before the release key's bundle, a simple signature whose
layer descriptor understates its payload's size. The registry keeps such a manifest (it checks
that the blob exists, not its size); venv-pull reads the payload as one refusal reason and still
installs on the trusted bundle."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.signing import make_key, write_policy
from venvship.artifact.documents import INDEX_TYPE, MANIFEST_TYPE, Descriptor, Index, sha256_digest
from venvship.artifact.sigformat import (
    EMPTY_JSON,
    SIG_ARTIFACT_TYPE,
    referrer_manifest,
    signature_layer,
    simple_signing_payload,
)
from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.referrers import list_bytes, referrer_entry, referrers_tag

from ._support import RegistryServer, client_for
from .test_signatures import Cli, _artifact, _install_argv
from .test_signatures import cli as _cli

cli = _cli  # the fixture, under the name tests ask for

pytestmark = pytest.mark.registry


def test_a_lying_simple_signature_listed_first_hides_no_bundle(
    open_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    host, repo = open_registry.host, "attacked/demo"
    key = make_key(tmp_path / "keys", "release")
    layout = _artifact(tmp_path / "a", tool_wheels)
    argv = ["publish", f"oci:{layout.root}", f"{host}/attacked", "--sign-key", str(key.private)]
    assert cli(venvship_main.main, [*argv, "--signature-format", "bundle"], open_registry)[0] == 0

    client = client_for(open_registry)
    index = client.check_tag(repo, "1.0")
    assert index is not None
    _, raw, _ = client.get_manifest(repo, index)
    subjects = [Descriptor(media_type=INDEX_TYPE, digest=index, size=len(raw))]
    subjects += [
        Descriptor(media_type=MANIFEST_TYPE, digest=m.digest, size=m.size)
        for m in Index.from_bytes(raw).manifests
    ]
    client.push_blob(repo, io.BytesIO(EMPTY_JSON), sha256_digest(EMPTY_JSON), len(EMPTY_JSON))
    for subject in subjects:
        payload = simple_signing_payload("attacker", subject.digest)
        client.push_blob(repo, io.BytesIO(payload), sha256_digest(payload), len(payload))
        layer = signature_layer(payload, b"\x30\x06\x02\x01\x01\x02\x01\x01", key="sha256:" + "0" * 64)
        lying = json.loads(
            referrer_manifest(subject=subject, artifact_type=SIG_ARTIFACT_TYPE, layers=[layer])
        )
        lying["layers"][0]["size"] = 16  # the payload is a few hundred bytes
        manifest = json.dumps(lying).encode()
        client.put_referrer(repo, manifest)
        listed = client.referrers(repo, subject.digest)
        entry = referrer_entry(manifest, media_type=MANIFEST_TYPE)
        client.put_manifest(repo, referrers_tag(subject.digest), list_bytes((entry, *listed)), INDEX_TYPE)
        assert client.referrers(repo, subject.digest)[0] == entry

    policy = write_policy(tmp_path / "policy.toml", {f"{host}/attacked": [key.public]})
    code, out, err = cli(
        venv_pull_main.main, _install_argv(tmp_path, f"{host}/{repo}:1.0", policy), open_registry
    )
    assert code == 0, err
    assert json.loads(out)["changed"] is True
