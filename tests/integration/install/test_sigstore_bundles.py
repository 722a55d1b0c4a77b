"""Sigstore bundles (cosign v3's signature format) on the target: a bundle signed by a trusted key
installs; a tampered, re-listed, oversized or foreign bundle is refused in one line before anything
is pulled, the host unchanged. The bundles are hand-edited here as anyone who can write to the
store could edit them."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from sigstore_models.bundle.v1 import Bundle as SchemaBundle

from tests.needs import require_python
from tests.signing import KeyPair, make_key, write_policy
from venvship.artifact.documents import Index, sha256_digest
from venvship.artifact.sigbundle import BUNDLE_TYPE, COSIGN_SIGN_PREDICATE, MAX_BUNDLE
from venvship.cli import venvship_main
from venvship.install.zipapp import build_zipapp
from venvship.oci.layout import Layout
from venvship.oci.referrers import list_bytes, parse_list, referrer_entry, referrers_tag

from .conftest import Artifacts, Pull, Wheels
from .test_signatures import _digest, _refused


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPair]:
    return {name: make_key(tmp_path / "keys", name) for name in ("release", "stranger")}


def _sign(ref: str, key: KeyPair, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    argv = ["sign", ref, "--key", str(key.private), "--signature-format", "bundle", *extra]
    assert venvship_main.main(argv) == 0
    return capsys.readouterr().out


def _bundle_referrers(layout: Layout, subject: str) -> list[dict[str, Any]]:
    listed = layout.resolve(f"demo:{referrers_tag(subject)}")
    entries = parse_list(layout.read_blob(listed.digest), where="referrers")
    return [json.loads(layout.read_blob(e.digest)) for e in entries if e.artifact_type == BUNDLE_TYPE]


def _rewrite_bundle(
    layout: Layout,
    subject: str,
    *,
    change: Callable[[dict[str, Any]], bytes | None] = lambda doc: None,
    from_digest: str = "",
) -> None:
    """List for ``subject`` the bundle referrers of ``from_digest`` (default: its own), each bundle
    passed through ``change`` (its new bytes; None: unchanged)."""
    entries = []
    for doc in _bundle_referrers(layout, from_digest or subject):
        [layer] = doc["layers"]
        raw = change(json.loads(layout.read_blob(layer["digest"])))
        if raw is not None:
            layout.put_bytes(raw)
            layer.update(digest=sha256_digest(raw), size=len(raw))
        doc["subject"]["digest"] = subject
        manifest = json.dumps(doc).encode()
        layout.put_bytes(manifest)
        entries.append(referrer_entry(manifest, media_type=doc["mediaType"]))
    layout.update_ref(f"demo:{referrers_tag(subject)}", lambda _: list_bytes(tuple(entries)))


def test_a_bundle_signed_artifact_installs_and_inspect_names_the_format(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    assert "signed 2 digest(s)" in _sign(ref, keys["release"], capsys)
    assert "signed 0 digest(s)" in _sign(ref, keys["release"], capsys)  # deterministic: once is enough

    # cosign v3's layout: the bundle as the one layer of a referrer, the statement about the digest.
    layout = Layout(artifacts.root)
    index = _digest(artifacts, "1.0")
    [doc] = _bundle_referrers(layout, index)
    assert (doc["artifactType"], doc["subject"]["digest"]) == (BUNDLE_TYPE, index)
    assert doc["annotations"]["dev.sigstore.bundle.predicateType"] == COSIGN_SIGN_PREDICATE
    [layer] = doc["layers"]
    assert layer["mediaType"] == BUNDLE_TYPE
    bundle = SchemaBundle.from_json(layout.read_blob(layer["digest"]))
    assert bundle.dsse_envelope is not None
    statement = json.loads(
        base64.b64decode(json.loads(layout.read_blob(layer["digest"]))["dsseEnvelope"]["payload"])
    )
    assert statement["subject"] == [{"digest": {"sha256": index[7:]}}]

    assert pull.install(ref, "--policy", str(policy))["changed"] is True
    assert pull.install(ref, "--policy", str(policy))["changed"] is False

    # A simple signature as well: both are listed, each with its format.
    assert venvship_main.main(["sign", ref, "--key", str(keys["release"].private)]) == 0
    capsys.readouterr()
    assert venvship_main.main(["inspect", ref]) == 0
    out = capsys.readouterr().out
    assert "(bundle signature, as claimed" in out and "(simple signature, as claimed" in out
    assert venvship_main.main(["inspect", ref, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert sorted(s["format"] for s in shown["signatures"]) == ["bundle", "simple"]


def _flip_signature(doc: dict[str, Any]) -> bytes:
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(doc).encode()


def _media_type(doc: dict[str, Any]) -> bytes:
    doc["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2"
    return json.dumps(doc).encode()


def _oversized(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode() + b" " * MAX_BUNDLE  # still the same JSON, only larger


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_flip_signature, "found a Sigstore bundle by key sha256:"),
        (_media_type, "mediaType 'application/vnd.dev.sigstore.bundle+json;version=0.2' is not"),
        (_oversized, "bytes (too large)"),
    ],
    ids=["signature byte", "media type", "oversized"],
)
def test_a_tampered_bundle_is_refused_and_the_host_untouched(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict[str, Any]], bytes],
    said: str,
) -> None:
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["release"], capsys)
    _rewrite_bundle(Layout(artifacts.root), _digest(artifacts, "1.0"), change=change)
    line = _refused(pull, ref, policy)
    assert said in line
    if change is _flip_signature:
        assert "that does not verify (tampered or another key)" in line


def test_a_bundle_over_another_digest_or_by_another_key_is_refused(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["stranger"], capsys)
    line = _refused(pull, ref, policy)
    assert "found a Sigstore bundle by key sha256:" in line and "which the policy does not trust" in line

    # The trusted key's bundle of the platform manifest, listed for the index: its statement's
    # subject is the platform's digest, not the index's.
    layout = Layout(artifacts.root)
    _sign(ref, keys["release"], capsys)
    index = _digest(artifacts, "1.0")
    [platform] = Index.from_bytes(layout.read_blob(index)).manifests
    _rewrite_bundle(layout, index, from_digest=platform.digest)
    assert f"a signature over another digest ({platform.digest})" in _refused(pull, ref, policy)


def test_signature_format_needs_a_signing_key(
    artifacts: Artifacts, wheels: Wheels, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = artifacts.write([wheels.demo1])
    assert (
        venvship_main.main(["publish", ref, f"oci:{artifacts.root}-copy", "--signature-format", "bundle"])
        == 1
    )
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--signature-format: only with --sign-key" in line


def test_python39_zipapp_verifies_a_bundle(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The bundle reader is the target side's: the zipapp on Python 3.9 verifies and refuses bundles."""
    py39 = require_python("3.9")
    pyz = build_zipapp(tmp_path / "dist" / "venv-pull.pyz")
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["stranger"], capsys)
    policy = write_policy(pull.tmp / "policy.json", {f"oci:{artifacts.root}": [keys["release"].public]})
    argv = [str(py39), str(pyz), *pull.argv("install", ref, "--json")[3:], "--policy", str(policy)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1 and "which the policy does not trust" in proc.stderr, proc.stderr
    _sign(ref, keys["release"], capsys)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed"] is True
