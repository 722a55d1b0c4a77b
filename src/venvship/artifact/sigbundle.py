"""Sigstore bundles (v0.3) as cosign v3 attaches them to an image, signed with a key pair.

``cosign sign --key`` (v3, the new bundle format) signs the manifest digest ``D`` as a DSSE
envelope of an in-toto statement (predicateType :data:`COSIGN_SIGN_PREDICATE`, one subject whose
sha256 is ``D``, an empty predicate) wrapped in a bundle (:data:`BUNDLE_TYPE`) with
``verificationMaterial.publicKey.hint`` (base64 of the sha256 of the public key's DER). The bundle
is the single layer of an OCI 1.1 referrer of ``D`` (artifactType :data:`BUNDLE_TYPE`, empty config,
``subject``), listed through the referrers API or the ``sha256-<hex>`` tag (cosign's
specs/BUNDLE_SPEC.md).

What decides trust is the policy's key and nothing the bundle says: the hint only orders the keys
tried; a certificate, transparency log entries or timestamps in it are neither required nor
believed. A ``messageSignature`` bundle signs a message by its sha256; it signs ``D`` only when that
digest is ``D`` (the signature is then checked over the manifest's own bytes). Stdlib only: both
sides read bundles; the build side writes them (``builder/signer.py``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ArtifactError
from .documents import canonical_json
from .jsondoc import load_object
from .sigformat import INTOTO_TYPE, dsse_pae

BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# The same version's other spelling (protobuf-specs: both name v0.3); anything else is refused.
BUNDLE_TYPES = (BUNDLE_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3")
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_TYPES = (STATEMENT_V1, "https://in-toto.io/Statement/v0.1")
CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"

MAX_BUNDLE = 128 << 10  # a key-signed bundle is about 1 KiB; with log entries and timestamps, a few

_TOP = {"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"}
_SIGNERS = ("publicKey", "certificate", "x509CertificateChain")
_MATERIAL = {*_SIGNERS, "tlogEntries", "timestampVerificationData"}
_ENVELOPE = {"payload", "payloadType", "signatures"}
_STATEMENT = {"_type", "subject", "predicateType", "predicate"}
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Bundle:
    """What a bundle signs and with what: ``signed`` is the exact bytes the signature covers (DSSE's
    pre-authentication encoding), empty for a ``messageSignature`` (the signed message is the
    subject's own bytes, ``digest`` their sha256)."""

    kind: Literal["dsse", "message"]
    signature: bytes
    key_hint: str  # a venvship key id (``sha256:<hex>``) from publicKey.hint, or "": never trusted
    digest: str  # the one subject the statement names, or the message's digest
    predicate_type: str = ""
    signed: bytes = b""


def key_hint(key_id: str) -> str:
    """Return the ``publicKey.hint`` cosign writes for venvship's ``key_id`` (``sha256:<hex>``)."""
    return base64.b64encode(bytes.fromhex(key_id.partition(":")[2])).decode()


def parse_bundle(raw: bytes, *, where: str) -> Bundle:
    """Return what the v0.3 bundle ``raw`` signs; raise ArtifactError (one line naming ``where`` and
    the field) for anything that is not exactly a bundle of one signature.

    Example: ``parse_bundle(store.blob(layer), where="bundle sha256:…").digest``
    """
    if len(raw) > MAX_BUNDLE:
        raise ArtifactError(f"{where}: {len(raw)} bytes, more than a bundle may hold ({MAX_BUNDLE})")
    doc = load_object(raw, where)
    _only(doc, _TOP, where)
    media_type = doc.get("mediaType")
    if media_type not in BUNDLE_TYPES:
        raise ArtifactError(f"{where}: mediaType {media_type!r:.80} is not {BUNDLE_TYPE}")
    hint = _material(doc.get("verificationMaterial"), f"{where}.verificationMaterial")
    contents = [k for k in ("dsseEnvelope", "messageSignature") if k in doc]
    if len(contents) != 1:
        raise ArtifactError(
            f"{where}: holds {contents or 'no content'}; one of dsseEnvelope, messageSignature"
        )
    if contents[0] == "dsseEnvelope":
        return _dsse(doc["dsseEnvelope"], hint, f"{where}.dsseEnvelope")
    return _message(doc["messageSignature"], hint, f"{where}.messageSignature")


def problem(bundle: Bundle, digest: str) -> str:
    """Return why ``bundle`` is not cosign's signature of the manifest ``digest`` ("" if it is)."""
    if bundle.kind == "dsse" and bundle.predicate_type != COSIGN_SIGN_PREDICATE:
        return f"a bundle whose predicateType is {bundle.predicate_type!r:.100}, not a signature"
    if bundle.digest != digest:
        return f"a signature over another digest ({bundle.digest})"
    return ""


def sign_statement(digest: str) -> bytes:
    """Return cosign's in-toto statement that signs the manifest ``digest``.

    Example: ``dsse_pae(INTOTO_TYPE, sign_statement("sha256:…"))`` is what the key signs.
    """
    algorithm, _, encoded = digest.partition(":")
    return canonical_json(
        {
            "_type": STATEMENT_V1,
            "subject": [{"digest": {algorithm: encoded}}],
            "predicateType": COSIGN_SIGN_PREDICATE,
            "predicate": {},
        }
    )


def dsse_bundle(statement: bytes, signature: bytes, *, key_id: str) -> bytes:
    """Return the bundle of ``statement``'s DSSE ``signature`` by the key ``key_id`` (no log entry)."""
    doc: dict[str, Any] = {
        "mediaType": BUNDLE_TYPE,
        # No log entry (key-based trust needs none); the empty list all the same, as readers that
        # hold the schema's field required (sigstore-models) expect it.
        "verificationMaterial": {"publicKey": {"hint": key_hint(key_id)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(statement).decode(),
            "payloadType": INTOTO_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode()}],
        },
    }
    return canonical_json(doc)


def _only(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ArtifactError(f"{where}: unknown field {unknown[0]!r:.80}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ArtifactError(f"{where}: not an object")
    return value


def _string(doc: dict[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise ArtifactError(f"{where}.{key}: missing or not a string")
    return value


def _bytes(value: Any, where: str) -> bytes:
    """Return protobuf JSON ``bytes`` (base64, standard or URL-safe alphabet) decoded."""
    if not isinstance(value, str) or not value:
        raise ArtifactError(f"{where}: missing or not a base64 string")
    try:
        if _B64.fullmatch(value):
            return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        if _B64URL.fullmatch(value):
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except binascii.Error as exc:
        raise ArtifactError(f"{where}: not valid base64 ({exc})") from exc
    raise ArtifactError(f"{where}: not valid base64")


def _material(value: Any, where: str) -> str:
    """Return the key id the material's ``publicKey.hint`` names ("" if none or not a sha256)."""
    material = _object(value, where)
    _only(material, _MATERIAL, where)
    signers = [k for k in _SIGNERS if k in material]
    if len(signers) != 1:
        raise ArtifactError(f"{where}: holds {signers or 'no signer'}; exactly one of {', '.join(_SIGNERS)}")
    if signers[0] != "publicKey":
        return ""  # a certificate names a key too, but only the policy's key is checked
    public = _object(material["publicKey"], f"{where}.publicKey")
    _only(public, {"hint"}, f"{where}.publicKey")
    hint = public.get("hint", "")
    if not isinstance(hint, str):
        raise ArtifactError(f"{where}.publicKey.hint: not a string")
    try:
        raw = base64.b64decode(hint, validate=True)
    except binascii.Error:
        return ""  # a hint in another form (a KMS key name): a hint still, never a key
    return f"sha256:{raw.hex()}" if len(raw) == 32 else ""


def _dsse(value: Any, hint: str, where: str) -> Bundle:
    envelope = _object(value, where)
    _only(envelope, _ENVELOPE, where)
    if envelope.get("payloadType") != INTOTO_TYPE:
        raise ArtifactError(f"{where}.payloadType: not {INTOTO_TYPE}")
    payload = _bytes(envelope.get("payload"), f"{where}.payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise ArtifactError(f"{where}.signatures: not exactly one signature")
    entry = _object(signatures[0], f"{where}.signatures[0]")
    _only(entry, {"sig", "keyid"}, f"{where}.signatures[0]")
    signature = _bytes(entry.get("sig"), f"{where}.signatures[0].sig")
    statement = load_object(payload, f"{where}.payload")
    _only(statement, _STATEMENT, f"{where}.payload")
    if statement.get("_type") not in STATEMENT_TYPES:
        raise ArtifactError(f"{where}.payload._type: not an in-toto statement")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise ArtifactError(f"{where}.payload.subject: not exactly one subject")
    digests = _object(
        _object(subjects[0], f"{where}.payload.subject[0]").get("digest"),
        f"{where}.payload.subject[0].digest",
    )
    encoded = digests.get("sha256")
    if not isinstance(encoded, str) or not _HEX64.fullmatch(encoded):
        raise ArtifactError(f"{where}.payload.subject[0].digest: no sha256 of 64 hex digits")
    return Bundle(
        kind="dsse",
        signature=signature,
        key_hint=hint,
        digest=f"sha256:{encoded}",
        predicate_type=_string(statement, "predicateType", f"{where}.payload"),
        signed=dsse_pae(INTOTO_TYPE, payload),
    )


def _message(value: Any, hint: str, where: str) -> Bundle:
    message = _object(value, where)
    _only(message, {"messageDigest", "signature"}, where)
    signature = _bytes(message.get("signature"), f"{where}.signature")
    digest = _object(message.get("messageDigest"), f"{where}.messageDigest")
    _only(digest, {"algorithm", "digest"}, f"{where}.messageDigest")
    if digest.get("algorithm") != "SHA2_256":
        raise ArtifactError(f"{where}.messageDigest.algorithm: not SHA2_256")
    raw = _bytes(digest.get("digest"), f"{where}.messageDigest.digest")
    if len(raw) != 32:
        raise ArtifactError(f"{where}.messageDigest.digest: not 32 bytes")
    return Bundle(kind="message", signature=signature, key_hint=hint, digest=f"sha256:{raw.hex()}")
