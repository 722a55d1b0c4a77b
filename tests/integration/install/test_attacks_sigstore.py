"""Attacks on the Sigstore bundle signatures, as someone who can write the store (a layout or a
registry) but holds no trusted key would make them: hand-made referrers and bundles listed next to
the release key's own signatures. What one broken or hostile signature may cost is a refusal line
of its own, never the trusted signature beside it, and never more work than the bound says."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tests.signing import KeyPair, make_key, write_policy
from venvship.artifact.documents import Descriptor, Index, sha256_digest
from venvship.artifact.sigbundle import BUNDLE_TYPE, key_hint, sign_statement
from venvship.artifact.sigformat import (
    EMPTY_JSON,
    INTOTO_TYPE,
    MAX_SIGNATURES,
    SIG_ARTIFACT_TYPE,
    dsse_pae,
    key_id,
    public_key_der,
    referrer_manifest,
    signature_layer,
    simple_signing_payload,
)
from venvship.cli import venvship_main
from venvship.oci.layout import Layout
from venvship.oci.referrers import list_bytes, parse_list, referrer_entry, referrers_tag, with_entry

from .conftest import Artifacts, Pull, Wheels
from .test_signatures import _digest, _refused


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPair]:
    return {name: make_key(tmp_path / "keys", name) for name in ("release", "stranger")}


def _sign(ref: str, key: KeyPair, capsys: pytest.CaptureFixture[str], form: str = "bundle") -> None:
    assert venvship_main.main(["sign", ref, "--key", str(key.private), "--signature-format", form]) == 0
    capsys.readouterr()


def _key_id(key: KeyPair) -> str:
    return key_id(public_key_der(key.public.read_text(), where=str(key.public)))


def _subject(layout: Layout, digest: str) -> Descriptor:
    raw = layout.read_blob(digest)
    return Descriptor(media_type=json.loads(raw)["mediaType"], digest=digest, size=len(raw))


def _list(layout: Layout, subject: str, manifest: bytes) -> None:
    """List the hand-made referrer ``manifest`` for ``subject``, as the attacker's push would."""
    layout.put_bytes(EMPTY_JSON)
    layout.put_bytes(manifest)
    entry = referrer_entry(manifest, media_type=json.loads(manifest)["mediaType"])
    where = f"referrers of {subject}"
    layout.update_ref(f"demo:{referrers_tag(subject)}", lambda raw: with_entry(raw, entry, where=where))


def _relist(layout: Layout, subject: str, *entries: Descriptor) -> None:
    """Make ``entries`` the whole referrers list of ``subject``, as a rewrite of its tag would."""
    listed = list_bytes(entries)
    layout.update_ref(f"demo:{referrers_tag(subject)}", lambda _: listed)


def _both(layout: Layout, artifacts: Artifacts) -> list[str]:
    index = _digest(artifacts, "1.0")
    return [index, *(m.digest for m in Index.from_bytes(layout.read_blob(index)).manifests)]


@pytest.mark.parametrize("blob", ["missing", "corrupt"])
def test_a_broken_simple_signature_does_not_hide_the_trusted_bundle(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
    blob: str,
) -> None:
    """The release key's bundles are there; the attacker lists, next to them, a simple signature
    whose payload blob the store does not hold (or holds other bytes under its name). It signs
    nothing, so it must count for nothing: the trusted bundle still installs the artifact."""
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["release"], capsys)
    layout = Layout(artifacts.root)
    for digest in _both(layout, artifacts):
        payload = simple_signing_payload("attacker", digest)
        layer = signature_layer(payload, b"\x30\x06\x02\x01\x01\x02\x01\x01", key=_key_id(keys["stranger"]))
        if blob == "corrupt":
            layout.blob_path(layer.digest).write_bytes(payload + b" ")
        manifest = referrer_manifest(
            subject=_subject(layout, digest), artifact_type=SIG_ARTIFACT_TYPE, layers=[layer]
        )
        _list(layout, digest, manifest)
    assert pull.install(ref, "--policy", str(policy))["changed"] is True


def test_a_broken_bundle_does_not_hide_the_trusted_simple_signature(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The other way round (this held): a bundle referrer whose blob is missing is a refusal
    reason of its own; the simple signature beside it installs."""
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["release"], capsys, "simple")
    layout = Layout(artifacts.root)
    for digest in _both(layout, artifacts):
        layer = Descriptor(media_type=BUNDLE_TYPE, digest=sha256_digest(b"{}x"), size=3)
        manifest = referrer_manifest(
            subject=_subject(layout, digest), artifact_type=BUNDLE_TYPE, layers=[layer]
        )
        _list(layout, digest, manifest)
    assert pull.install(ref, "--policy", str(policy))["changed"] is True


def _forged_bundle(digest: str, hint_key: str) -> bytes:
    """A bundle of the statement signing ``digest``, the signature the attacker's own bytes."""
    statement = base64.b64encode(sign_statement(digest)).decode()
    assert dsse_pae(INTOTO_TYPE, sign_statement(digest))  # what a trusted key would have to sign
    return json.dumps(
        {
            "mediaType": BUNDLE_TYPE,
            "verificationMaterial": {"publicKey": {"hint": key_hint(hint_key)}},
            "dsseEnvelope": {
                "payload": statement,
                "payloadType": INTOTO_TYPE,
                "signatures": [{"sig": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()}],
            },
        }
    ).encode()


def test_many_listed_signatures_cost_no_more_checks_than_the_bound(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The attacker lists as many signature referrers as the list holds, each with as many
    signature layers as a referrer may carry, all naming the digest and a trusted key's hint (so
    none is dismissed before openssl runs): each costs one openssl run per trusted key. At most
    MAX_SIGNATURES signatures of a digest are checked, whatever the store lists."""
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    trusted = _key_id(keys["release"])
    for digest in _both(layout, artifacts):
        subject = _subject(layout, digest)
        for i in range(MAX_SIGNATURES + 2):
            layers = []
            for j in range(MAX_SIGNATURES + 2):
                payload = simple_signing_payload(f"attacker/{i}/{j}", digest)
                layout.put_bytes(payload)
                layers.append(signature_layer(payload, bytes([0x30, 6, 2, 1, 1, 2, 1, j + 1]), key=trusted))
            _list(
                layout,
                digest,
                referrer_manifest(subject=subject, artifact_type=SIG_ARTIFACT_TYPE, layers=layers),
            )
        bundle = _forged_bundle(digest, trusted)
        layout.put_bytes(bundle)
        layer = Descriptor(media_type=BUNDLE_TYPE, digest=sha256_digest(bundle), size=len(bundle))
        _list(layout, digest, referrer_manifest(subject=subject, artifact_type=BUNDLE_TYPE, layers=[layer]))
    proc = pull("install", ref, "--policy", str(policy), "-v", ok=False)
    assert proc.returncode == 1
    runs = [ln for ln in proc.stderr.splitlines() if "running: " in ln and " dgst -sha256 -verify " in ln]
    assert 0 < len(runs) <= MAX_SIGNATURES  # the index is refused: its manifest is never reached
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    assert "that does not verify (tampered or another key)" in line


@pytest.mark.parametrize("kind", ["fifo", "zero", "large"])
def test_a_bundle_blob_that_is_no_plain_blob_is_refused_and_hides_nothing(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    """In a layout the attacker writes, the bundle layer's blob is a FIFO (an open that never
    ends), a symlink to /dev/zero (a read that never ends) or a file far larger than its
    descriptor says: one refusal reason each, no hang, and the trusted signature beside it counts."""
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    index = _digest(artifacts, "1.0")
    for digest in _both(layout, artifacts):
        bundle = _forged_bundle(digest, _key_id(keys["release"]))
        layer = Descriptor(media_type=BUNDLE_TYPE, digest=sha256_digest(bundle), size=len(bundle))
        path = layout.blob_path(layer.digest)
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "zero":
            path.symlink_to("/dev/zero")
        else:
            with path.open("wb") as fh:
                fh.write(bundle)
                fh.truncate(1 << 30)  # sparse: a GiB on the page, nothing on the disk
        _list(
            layout,
            digest,
            referrer_manifest(subject=_subject(layout, digest), artifact_type=BUNDLE_TYPE, layers=[layer]),
        )
    line = _refused(pull, ref, policy)
    assert f"{index}: refused by" in line and "a malformed bundle (" in line, line
    _sign(ref, keys["release"], capsys, "simple")
    assert pull.install(ref, "--policy", str(policy))["changed"] is True


def test_a_signed_index_does_not_vouch_for_its_platform_manifest(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The release key's bundle signs the index; the attacker empties the platform manifest's
    referrers (as a rewrite of its fallback tag would). The manifest about to be installed is
    the one that must be signed: the index's signature does not stand in for it (this held)."""
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["release"], capsys)
    layout = Layout(artifacts.root)
    index, platform = _both(layout, artifacts)
    _relist(layout, platform)
    line = _refused(pull, ref, policy)
    assert f"@{platform}: refused by" in line and "found no signature" in line, line
    # The index's own bundle listed for the manifest: its statement names the index, not it.
    [entry] = parse_list(
        layout.read_blob(layout.resolve(f"demo:{referrers_tag(index)}").digest), where="index"
    )
    _relist(layout, platform, entry)
    assert f"whose subject is {index}" in _refused(pull, ref, policy)


def test_a_bundle_naming_a_trusted_key_it_was_not_signed_by_is_refused(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stranger's bundles whose hint names the release key: the hint only orders the keys
    tried, the release key's openssl run says no (this held)."""
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["stranger"], capsys)
    trusted, stranger = key_hint(_key_id(keys["release"])), key_hint(_key_id(keys["stranger"]))
    layout = Layout(artifacts.root)
    for digest in _both(layout, artifacts):
        [entry] = parse_list(
            layout.read_blob(layout.resolve(f"demo:{referrers_tag(digest)}").digest), where="r"
        )
        doc = json.loads(layout.read_blob(entry.digest))
        bundle = layout.read_blob(doc["layers"][0]["digest"]).replace(stranger.encode(), trusted.encode())
        layout.put_bytes(bundle)
        doc["layers"][0].update(digest=sha256_digest(bundle), size=len(bundle))
        manifest = json.dumps(doc).encode()
        layout.put_bytes(manifest)
        _relist(layout, digest, referrer_entry(manifest, media_type=doc["mediaType"]))
    line = _refused(pull, ref, policy)
    assert f"a Sigstore bundle by key {_key_id(keys['release'])[:19]} that does not verify" in line, line


def test_inspect_shows_a_hostile_key_hint_short_and_escaped(
    artifacts: Artifacts, wheels: Wheels, keys: dict[str, KeyPair], capsys: pytest.CaptureFixture[str]
) -> None:
    """A signature's key hint is the attacker's text: inspect shows it as a claim, escaped, and no
    longer than a key id, whatever its length."""
    ref = artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    index = _digest(artifacts, "1.0")
    payload = simple_signing_payload("attacker", index)
    layout.put_bytes(payload)
    hint = "\x1b]0;owned\x07" + "x" * 100_000
    layer = signature_layer(payload, b"\x30\x06\x02\x01\x01\x02\x01\x01", key=hint)
    _list(
        layout,
        index,
        referrer_manifest(subject=_subject(layout, index), artifact_type=SIG_ARTIFACT_TYPE, layers=[layer]),
    )
    assert venvship_main.main(["inspect", ref]) == 0
    out = capsys.readouterr().out
    [line] = [ln for ln in out.splitlines() if "signed by key" in ln]
    assert "\x1b" not in out and "\x07" not in out
    assert len(line) < 200, f"{len(line)} characters"


FORGED = "venv-pull: installed, all signatures verified"


def test_the_refusal_line_carries_no_control_character_a_signature_holds(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, keys: dict[str, KeyPair]
) -> None:
    """What venv-pull says of the signatures it refuses is partly the store's text: a simple
    signature's key hint, a bundle referrer's annotation key in the reason it is malformed. None of
    it may end the line, start a forged one or drive the terminal."""
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    index = _digest(artifacts, "1.0")
    subject = _subject(layout, index)
    payload = simple_signing_payload("attacker", index)
    layout.put_bytes(payload)
    layer = signature_layer(payload, b"\x30\x06\x02\x01\x01\x02\x01\x01", key="\x1b[2K\n" + FORGED)
    _list(layout, index, referrer_manifest(subject=subject, artifact_type=SIG_ARTIFACT_TYPE, layers=[layer]))
    bundle = _forged_bundle(index, _key_id(keys["release"]))
    layout.put_bytes(bundle)
    doc = json.loads(
        referrer_manifest(
            subject=subject,
            artifact_type=BUNDLE_TYPE,
            layers=[Descriptor(media_type=BUNDLE_TYPE, digest=sha256_digest(bundle), size=len(bundle))],
        )
    )
    doc["layers"][0]["annotations"] = {f"\x1b]0;pwned\x07\r\n{FORGED}": 1}
    _list(layout, index, json.dumps(doc).encode())
    proc = pull("install", ref, "--policy", str(policy), ok=False)
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    assert "which the policy does not trust" in line and "a malformed referrer" in line, line
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr and "\x07" not in proc.stderr, proc.stderr
    assert not any(ln.startswith(FORGED) for ln in proc.stderr.splitlines()), proc.stderr
