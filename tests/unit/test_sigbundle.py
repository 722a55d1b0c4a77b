"""Sigstore bundles: the ones cosign and sigstore-go made (tests/resources/sigstore) are read exactly
and their signatures hold under the host's openssl with the key a policy names; any change to them
is refused, in one line. Bundles venvship writes are valid under the Sigstore bundle schema."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from sigstore_models.bundle.v1 import Bundle as SchemaBundle

from venvship.artifact.documents import Descriptor, canonical_json, sha256_digest
from venvship.artifact.sigbundle import (
    BUNDLE_TYPE,
    COSIGN_SIGN_PREDICATE,
    MAX_BUNDLE,
    dsse_bundle,
    key_hint,
    parse_bundle,
    problem,
    sign_statement,
)
from venvship.artifact.sigformat import INTOTO_TYPE, dsse_pae, key_id, public_key_der, referrer_manifest
from venvship.artifact.siglisting import Listed, listed_signatures
from venvship.errors import ArtifactError
from venvship.verify.policy import Rule, TrustedKey
from venvship.verify.signature import trusted_signer

RESOURCES = Path(__file__).parents[1] / "resources" / "sigstore"
COSIGN = RESOURCES / "cosign-oci-attestation.sigstore.json"
COSIGN_KEY = RESOURCES / "cosign-oci-attestation.pub"
COSIGN_SUBJECT = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
SIGSTORE_GO = RESOURCES / "sigstore-go-public-key.sigstore.json"
SIGSTORE_GO_KEY = RESOURCES / "sigstore-go-public-key.pem"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def _rule(*keys: Path) -> Rule:
    trusted = tuple(
        TrustedKey(path=k, key_id=key_id(public_key_der(k.read_text(), where=str(k)))) for k in keys
    )
    return Rule(source="test policy", require_signature=True, keys=trusted)


def _signer(rule: Rule, item: Listed, tmp_path: Path) -> str | None:
    return trusted_signer(rule, item, openssl=OPENSSL, tmp=tmp_path)


def _edited(path: Path, edit: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(path.read_bytes())
    edit(doc)
    return json.dumps(doc).encode()


def _statement(doc: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))  # type: ignore[no-any-return]


def _set_statement(doc: dict[str, Any], statement: dict[str, Any]) -> None:
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def test_a_cosign_made_bundle_verifies_with_the_key_the_policy_names(tmp_path: Path) -> None:
    raw = COSIGN.read_bytes()
    SchemaBundle.from_json(raw)  # the vector is what the schema says a bundle is
    bundle = parse_bundle(raw, where=str(COSIGN))
    assert (bundle.kind, bundle.digest) == ("dsse", COSIGN_SUBJECT)
    payload = base64.b64decode(json.loads(raw)["dsseEnvelope"]["payload"])
    assert bundle.signed == b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload)
    assert bundle.key_hint == ""  # a certificate: what names the key is the policy, never the bundle
    item = Listed(signed=bundle.signed, signature=bundle.signature, form="bundle")
    rule = _rule(COSIGN_KEY)
    assert _signer(rule, item, tmp_path) == rule.keys[0].key_id
    assert _signer(_rule(SIGSTORE_GO_KEY), item, tmp_path) is None  # another key: no


def test_a_cosign_attestation_is_not_an_image_signature() -> None:
    """The vector is an attestation (a predicate about the image), not cosign's signature of it:
    it does not stand for "this key vouches for this manifest"."""
    bundle = parse_bundle(COSIGN.read_bytes(), where="cosign")
    assert "predicateType is 'https://cosign.sigstore.dev/attestation/v1', not a signature" in problem(
        bundle, COSIGN_SUBJECT
    )


def test_a_key_based_message_signature_bundle_verifies(tmp_path: Path) -> None:
    bundle = parse_bundle(SIGSTORE_GO.read_bytes(), where="sigstore-go")
    rule = _rule(SIGSTORE_GO_KEY)
    assert bundle.kind == "message"
    assert bundle.key_hint == rule.keys[0].key_id  # publicKey.hint: base64 of the DER's sha256
    assert bundle.digest == sha256_digest(b"test content")
    item = Listed(signed=b"test content", signature=bundle.signature, key_hint=bundle.key_hint, form="bundle")
    assert _signer(rule, item, tmp_path) == rule.keys[0].key_id
    flipped = Listed(signed=b"test content!", signature=bundle.signature, form="bundle")
    assert _signer(rule, flipped, tmp_path) is None


def _flip_sig(doc: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


def _other_subject(doc: dict[str, Any]) -> None:
    statement = _statement(doc)
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    _set_statement(doc, statement)


@pytest.mark.parametrize("edit", [_flip_sig, _other_subject], ids=["signature byte", "subject digest"])
def test_a_tampered_cosign_bundle_does_not_verify(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    bundle = parse_bundle(_edited(COSIGN, edit), where="tampered")
    item = Listed(signed=bundle.signed, signature=bundle.signature, form="bundle")
    assert _signer(_rule(COSIGN_KEY), item, tmp_path) is None


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            doc = doc[part]
        if value is KeyError:
            del doc[last]
        else:
            doc[last] = value

    return edit


def _statement_edit(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        statement = _statement(doc)
        statement[key] = value
        _set_statement(doc, statement)

    return edit


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (
            _set("mediaType", "application/vnd.dev.sigstore.bundle.v0.4+json"),
            "mediaType 'application/vnd.dev",
        ),
        (_set("mediaType", KeyError), "mediaType None is not"),
        (_set("extra", 1), "unknown field 'extra'"),
        (_set("verificationMaterial.publicKey", {"hint": "x"}), "holds ['publicKey', 'certificate']"),
        (_set("verificationMaterial.certificate", KeyError), "holds no signer"),
        (_set("messageSignature", {}), "holds ['dsseEnvelope', 'messageSignature']"),
        (_set("dsseEnvelope.payloadType", "text/plain"), "dsseEnvelope.payloadType: not application"),
        (_set("dsseEnvelope.payload", "%%%"), "dsseEnvelope.payload: not valid base64"),
        (_set("dsseEnvelope.signatures", []), "not exactly one signature"),
        (_set("dsseEnvelope.signatures", [{"sig": "AA=="}, {"sig": "AA=="}]), "not exactly one signature"),
        (_set("dsseEnvelope.signatures", [{"sig": "AA==", "publicKey": "x"}]), "unknown field 'publicKey'"),
        (_statement_edit("_type", "https://example.com/Statement"), "not an in-toto statement"),
        (_statement_edit("subject", []), "not exactly one subject"),
        (_statement_edit("subject", [{"digest": {"sha256": "0" * 64}}] * 2), "not exactly one subject"),
        (_statement_edit("subject", [{"digest": {"sha512": "ab"}}]), "no sha256 of 64 hex digits"),
        (_statement_edit("predicateType", 7), "predicateType: missing or not a string"),
    ],
)
def test_a_malformed_bundle_is_refused_in_one_line(edit: Callable[[dict[str, Any]], None], said: str) -> None:
    with pytest.raises(ArtifactError) as info:
        parse_bundle(_edited(COSIGN, edit), where="bundle.json")
    message = str(info.value)
    assert message.startswith("bundle.json") and said in message and "\n" not in message


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"{", b'{"mediaType": "' + b"x" * MAX_BUNDLE + b'"}', b'{"a": ' * 100 + b"1" + b"}" * 100],
    ids=["empty", "array", "truncated", "oversized", "deep"],
)
def test_what_is_not_json_of_a_bundle_is_refused(raw: bytes) -> None:
    with pytest.raises(ArtifactError, match=r"^bundle\.json: "):
        parse_bundle(raw, where="bundle.json")


def test_venvship_writes_cosigns_layout_and_the_schema_holds(tmp_path: Path) -> None:
    """A bundle as ``venvship sign --signature-format bundle`` writes it: cosign v3's statement
    and referrer layout, valid under the schema, and read back as the signature of its digest."""
    key = tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", key], check=True
    )
    pub = subprocess.run(["openssl", "ec", "-in", key, "-pubout"], check=True, capture_output=True).stdout
    (tmp_path / "key.pub").write_bytes(pub)
    rule = _rule(tmp_path / "key.pub")
    digest = sha256_digest(b"a manifest")
    statement = sign_statement(digest)
    assert json.loads(statement) == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": digest[7:]}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    (tmp_path / "pae").write_bytes(dsse_pae(INTOTO_TYPE, statement))
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", key, tmp_path / "pae"], check=True, capture_output=True
    ).stdout
    raw = dsse_bundle(statement, signature, key_id=rule.keys[0].key_id)
    schema = SchemaBundle.from_json(raw)
    assert schema.verification_material.public_key is not None
    assert schema.verification_material.public_key.hint == key_hint(rule.keys[0].key_id)

    layer = Descriptor(media_type=BUNDLE_TYPE, digest=sha256_digest(raw), size=len(raw))
    subject = Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=digest, size=10)
    manifest = referrer_manifest(subject=subject, artifact_type=BUNDLE_TYPE, layers=[layer])
    entry = Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json",
        digest=sha256_digest(manifest),
        size=len(manifest),
        artifact_type=BUNDLE_TYPE,
    )
    blobs = {layer.digest: raw, entry.digest: manifest, digest: b"a manifest"}
    [item] = listed_signatures(digest, [entry], manifest=lambda d: blobs[d], blob=lambda d: blobs[d.digest])
    assert (item.problem, item.form, item.key_hint) == ("", "bundle", rule.keys[0].key_id)
    assert _signer(rule, item, tmp_path) == rule.keys[0].key_id
    # Listed for another digest: the statement names its own, and that is what is refused.
    other = sha256_digest(b"another manifest")
    moved = referrer_manifest(
        subject=Descriptor(media_type=subject.media_type, digest=other, size=16),
        artifact_type=BUNDLE_TYPE,
        layers=[layer],
    )
    blobs[sha256_digest(moved)] = moved
    [item] = listed_signatures(
        other,
        [Descriptor(media_type=entry.media_type, digest=sha256_digest(moved), size=len(moved))],
        manifest=lambda d: blobs[d],
        blob=lambda d: blobs[d.digest],
    )
    assert item.problem == f"a signature over another digest ({digest})"


def test_a_bundle_layer_is_bounded_before_it_is_read() -> None:
    digest = sha256_digest(b"a manifest")
    big = Descriptor(media_type=BUNDLE_TYPE, digest=sha256_digest(b"x"), size=MAX_BUNDLE + 1)
    subject = Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=digest, size=10)
    manifest = referrer_manifest(subject=subject, artifact_type=BUNDLE_TYPE, layers=[big])

    def never(desc: Descriptor) -> bytes:
        raise AssertionError(f"{desc.digest} was read")

    entry = Descriptor(media_type=subject.media_type, digest=sha256_digest(manifest), size=len(manifest))
    [item] = listed_signatures(digest, [entry], manifest=lambda d: manifest, blob=never)
    assert item.problem == f"a bundle of {MAX_BUNDLE + 1} bytes (too large)"
    wrong = referrer_manifest(
        subject=subject,
        artifact_type=BUNDLE_TYPE,
        layers=[Descriptor(media_type="application/json", digest=big.digest, size=1)],
    )
    [item] = listed_signatures(digest, [entry], manifest=lambda d: wrong, blob=never)
    assert "without exactly one application/vnd.dev.sigstore.bundle.v0.3+json layer" in item.problem


def test_canonical_bundle_bytes_are_stable() -> None:
    """The same statement and signature make the same bytes: signing again attaches nothing new."""
    statement = sign_statement(sha256_digest(b"m"))
    one = dsse_bundle(statement, b"sig", key_id="sha256:" + "ab" * 32)
    assert one == dsse_bundle(statement, b"sig", key_id="sha256:" + "ab" * 32)
    assert one == canonical_json(json.loads(one))


def test_a_message_signature_bundle_signs_the_manifest_bytes(tmp_path: Path) -> None:
    """A ``messageSignature`` bundle whose digest is the manifest's signs that manifest: its
    signature is checked over the manifest's own bytes, never over what the bundle claims."""
    key = tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", key], check=True
    )
    pub = subprocess.run(["openssl", "ec", "-in", key, "-pubout"], check=True, capture_output=True).stdout
    (tmp_path / "key.pub").write_bytes(pub)
    rule = _rule(tmp_path / "key.pub")
    manifest_bytes = b'{"a": "manifest"}'
    (tmp_path / "m").write_bytes(manifest_bytes)
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", key, tmp_path / "m"], check=True, capture_output=True
    ).stdout
    digest = sha256_digest(manifest_bytes)
    raw = canonical_json(
        {
            "mediaType": BUNDLE_TYPE,
            "verificationMaterial": {"publicKey": {"hint": key_hint(rule.keys[0].key_id)}, "tlogEntries": []},
            "messageSignature": {
                "messageDigest": {
                    "algorithm": "SHA2_256",
                    "digest": base64.b64encode(bytes.fromhex(digest[7:])).decode(),
                },
                "signature": base64.b64encode(signature).decode(),
            },
        }
    )
    SchemaBundle.from_json(raw)
    layer = Descriptor(media_type=BUNDLE_TYPE, digest=sha256_digest(raw), size=len(raw))
    subject = Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=digest, size=17)
    referrer = referrer_manifest(subject=subject, artifact_type=BUNDLE_TYPE, layers=[layer])
    entry = Descriptor(media_type=subject.media_type, digest=sha256_digest(referrer), size=len(referrer))
    blobs = {layer.digest: raw, entry.digest: referrer, digest: manifest_bytes}
    [item] = listed_signatures(digest, [entry], manifest=lambda d: blobs[d], blob=lambda d: blobs[d.digest])
    assert (item.problem, item.signed) == ("", manifest_bytes)
    assert _signer(rule, item, tmp_path) == rule.keys[0].key_id


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Rule, Callable[[bytes], bytes]]:
    """A trusted key made by openssl, and what it signs (ECDSA P-256, SHA-256, DER)."""
    key = tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", key], check=True
    )
    pub = subprocess.run(["openssl", "ec", "-in", key, "-pubout"], check=True, capture_output=True).stdout
    (tmp_path / "key.pub").write_bytes(pub)

    def sign(data: bytes) -> bytes:
        (tmp_path / "data").write_bytes(data)
        argv = ["openssl", "dgst", "-sha256", "-sign", str(key), str(tmp_path / "data")]
        return subprocess.run(argv, check=True, capture_output=True).stdout

    return _rule(tmp_path / "key.pub"), sign


def _envelope_bundle(envelope: str, hint: str) -> bytes:
    head = f'{{"mediaType":"{BUNDLE_TYPE}","verificationMaterial":{{"publicKey":{{"hint":"{hint}"}}}},'
    return f'{head}"dsseEnvelope":{envelope}}}'.encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_duplicate_keys_never_part_the_signed_statement_from_the_parsed_one(
    tmp_path: Path, signer: tuple[Rule, Callable[[bytes], bytes]]
) -> None:
    """The trusted key signed the statement of X. The attacker adds a second ``payload`` (the
    statement of Y) before or after it, or a second ``subject`` inside it: whichever one Python's
    json keeps is also the one whose bytes the signature is checked over, so Y never verifies.
    (This held: nothing is parsed from bytes other than those the signature covers.)"""
    rule, sign = signer
    x, y = sha256_digest(b"signed"), sha256_digest(b"attacker's")
    good, evil = sign_statement(x), sign_statement(y)
    sig = _b64(sign(dsse_pae(INTOTO_TYPE, good)))
    hint = key_hint(rule.keys[0].key_id)
    for first, last in ((good, evil), (evil, good)):
        envelope = (
            f'{{"payload":"{_b64(first)}","payload":"{_b64(last)}",'
            f'"payloadType":"{INTOTO_TYPE}","signatures":[{{"sig":"{sig}"}}]}}'
        )
        bundle = parse_bundle(_envelope_bundle(envelope, hint), where="dup")
        item = Listed(signed=bundle.signed, signature=bundle.signature, form="bundle")
        verified = _signer(rule, item, tmp_path) is not None
        assert (bundle.digest, verified) in ((x, True), (y, False))
        assert problem(bundle, y) or not verified  # never a signature of Y
    # Two subjects under one key inside the signed statement: a different payload, so no signature.
    doubled = good.replace(
        b'"subject":', b'"subject":[{"digest":{"sha256":"%s"}}],"subject":' % y[7:].encode()
    )
    envelope = (
        f'{{"payload":"{_b64(doubled)}","payloadType":"{INTOTO_TYPE}","signatures":[{{"sig":"{sig}"}}]}}'
    )
    bundle = parse_bundle(_envelope_bundle(envelope, hint), where="dup")
    item = Listed(signed=bundle.signed, signature=bundle.signature, form="bundle")
    assert _signer(rule, item, tmp_path) is None


def test_base64_spellings_change_no_signed_byte(
    tmp_path: Path, signer: tuple[Rule, Callable[[bytes], bytes]]
) -> None:
    """The payload and signature in the URL-safe alphabet or without padding (protobuf JSON's
    readers take both) decode to the same bytes, so they verify as the standard spelling does;
    openssl never reads base64 here. Whitespace or a mix of the two alphabets is refused in one
    line (cosign writes neither). (This held.)"""
    rule, sign = signer
    statement = sign_statement(sha256_digest(b"m"))
    signature = sign(dsse_pae(INTOTO_TYPE, statement))
    hint = key_hint(rule.keys[0].key_id)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        payload, sig = (encode(statement).decode().rstrip("="), encode(signature).decode().rstrip("="))
        envelope = f'{{"payload":"{payload}","payloadType":"{INTOTO_TYPE}","signatures":[{{"sig":"{sig}"}}]}}'
        bundle = parse_bundle(_envelope_bundle(envelope, hint), where="b64")
        assert bundle.signed == dsse_pae(INTOTO_TYPE, statement) and bundle.signature == signature
        item = Listed(signed=bundle.signed, signature=bundle.signature, form="bundle")
        assert _signer(rule, item, tmp_path) == rule.keys[0].key_id
    spaced = _b64(statement)[:8] + "\n" + _b64(statement)[8:]
    mixed = _b64(b"\xfb\xff") + base64.urlsafe_b64encode(b"\xfb\xff").decode()
    for bad in (spaced, mixed):
        doc = {"payload": bad, "payloadType": INTOTO_TYPE, "signatures": [{"sig": "AA"}]}
        with pytest.raises(ArtifactError, match=r"^b64\.dsseEnvelope\.payload: not valid base64"):
            parse_bundle(_envelope_bundle(json.dumps(doc), hint), where="b64")


@pytest.mark.parametrize(
    ("subject", "said"),
    [
        ([{"digest": {"sha256": sha256_digest(b"m")[7:].upper()}}], "no sha256 of 64 hex digits"),
        ([{"digest": {"SHA256": sha256_digest(b"m")[7:]}}], "no sha256 of 64 hex digits"),
        ([{"digest": {"sha512": "ab" * 64}}], "no sha256 of 64 hex digits"),
        (
            [{"digest": {"sha256": sha256_digest(b"m")[7:]}}, {"digest": {"sha256": "0" * 64}}],
            "not exactly one",
        ),
    ],
    ids=["upper case", "algorithm case", "another algorithm", "two subjects"],
)
def test_a_subject_in_another_spelling_or_beside_another_is_refused(subject: list[Any], said: str) -> None:
    """The statement must name the digest in the one spelling venv-pull compares (this held)."""
    statement = json.loads(sign_statement(sha256_digest(b"m")))
    statement["subject"] = subject
    envelope = {
        "payload": _b64(json.dumps(statement).encode()),
        "payloadType": INTOTO_TYPE,
        "signatures": [{"sig": "AA"}],
    }
    with pytest.raises(ArtifactError, match=said):
        parse_bundle(_envelope_bundle(json.dumps(envelope), ""), where="subject")


def test_a_hint_naming_another_trusted_key_only_orders_the_keys(
    tmp_path: Path, signer: tuple[Rule, Callable[[bytes], bytes]]
) -> None:
    """Two trusted keys; the bundle, signed by the first, names the second: the key that verifies
    is the one reported, and a stranger's signature naming a trusted key verifies under none (this held)."""
    rule, sign = signer
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(
        ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", other / "k"], check=True
    )
    pub = subprocess.run(
        ["openssl", "ec", "-in", other / "k", "-pubout"], check=True, capture_output=True
    ).stdout
    (other / "k.pub").write_bytes(pub)
    both = Rule(source="test policy", require_signature=True, keys=(*rule.keys, *_rule(other / "k.pub").keys))
    signed = dsse_pae(INTOTO_TYPE, sign_statement(sha256_digest(b"m")))
    item = Listed(signed=signed, signature=sign(signed), key_hint=both.keys[1].key_id, form="bundle")
    assert _signer(both, item, tmp_path) == both.keys[0].key_id
    assert _signer(_rule(other / "k.pub"), item, tmp_path) is None
