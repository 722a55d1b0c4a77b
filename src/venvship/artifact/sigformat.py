"""The signature format venvship writes and reads: cosign's key-pair signatures as OCI referrers.

A signature of the manifest (or index) ``D`` is an OCI 1.1 referrer of ``D`` laid out as cosign
does with ``--registry-referrers-mode=oci-1-1``: artifactType
``application/vnd.dev.cosign.artifact.sig.v1+json``, one layer per signature holding the
*simple-signing payload* (which names ``D``), the ECDSA P-256 / SHA-256 signature of that payload's
exact bytes (ASN.1 DER, base64) in the layer annotation ``dev.cosignproject.cosign/signature``.
``cosign verify --key KEY.pub --insecure-ignore-tlog --experimental-oci11`` and
``openssl dgst -sha256 -verify KEY.pub`` both accept it. Provenance is an in-toto statement in a
DSSE envelope, signed over DSSE's pre-authentication encoding with the same key.

Only the format lives here (stdlib, both sides): signing needs a private key (build side,
``builder/signer.py``); verifying runs ``openssl`` on the target (``verify/signature.py``). cosign
v3's other form, the Sigstore bundle, is in ``sigbundle.py``; ``siglisting.py`` lists both.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ArtifactError
from .documents import MANIFEST_TYPE, Descriptor, canonical_json, sha256_digest
from .jsondoc import load_object, typed_field

SIG_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIMPLE_SIGNING_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
KEY_ANNOTATION = "io.venvship.key"  # sha256 of the signer's public key: a hint, never trusted
SIGNATURE_TYPE = "cosign container image signature"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"

INTOTO_TYPE = "application/vnd.in-toto+json"
DSSE_TYPE = "application/vnd.dsse.envelope.v1+json"
PREDICATE_ANNOTATION = "predicateType"
SBOM_TYPE = "application/vnd.cyclonedx+json"  # CycloneDX JSON (IANA): the artifactType and layer type

MAX_PAYLOAD = 64 << 10  # a simple-signing payload is a few hundred bytes
MAX_SIGNATURES = 32  # per referrer manifest and per subject: more is noise, not trust

# Every ECDSA P-256 public key in DER (SubjectPublicKeyInfo) starts with these bytes (the
# id-ecPublicKey and prime256v1 OIDs, then the bit string header of the 65-byte point).
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----")


def public_key_der(pem: str, *, where: str) -> bytes:
    """Return the DER of the ECDSA P-256 public key in ``pem`` (``-----BEGIN PUBLIC KEY-----``).

    Example: ``key_id(public_key_der(Path("release.pub").read_text(), where="release.pub"))``
    """
    match = _PEM.search(pem)
    if not match:
        raise ArtifactError(f"{where}: not a PEM public key (-----BEGIN PUBLIC KEY-----)")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except binascii.Error as exc:
        raise ArtifactError(f"{where}: the PEM public key is not valid base64") from exc
    if not (der.startswith(_P256_SPKI_PREFIX) and len(der) == len(_P256_SPKI_PREFIX) + 65):
        raise ArtifactError(f"{where}: not an ECDSA P-256 public key (the cosign key-pair kind)")
    return der


def key_id(der: bytes) -> str:
    """Return the id venvship shows for a public key: ``sha256:`` + hex of its DER."""
    return sha256_digest(der)


def short_id(key: str) -> str:
    """Return a key id shortened for a message line (``sha256:0123456789ab``)."""
    return key[:19]


def simple_signing_payload(reference: str, digest: str) -> bytes:
    """Return cosign's simple-signing payload naming ``digest`` (pulled as ``reference``).

    Example: ``simple_signing_payload("registry.example.com/venvs/demo", "sha256:…")``
    """
    doc = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return canonical_json(doc)


def signed_digest(payload: bytes, *, where: str) -> str:
    """Return the manifest digest a simple-signing ``payload`` names; raise ArtifactError otherwise."""
    doc = load_object(payload, where)
    critical = doc.get("critical")
    if not isinstance(critical, dict) or critical.get("type") != SIGNATURE_TYPE:
        raise ArtifactError(f"{where}: not a simple-signing payload (critical.type)")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str):
        raise ArtifactError(f"{where}: no critical.image.docker-manifest-digest")
    return digest


@dataclass(frozen=True)
class SignatureLayer:
    """One signature of a signature manifest: the payload blob, the signature, the key hint."""

    payload: Descriptor
    signature: bytes
    key_hint: str


@dataclass(frozen=True)
class Referrer:
    """A referrer manifest: its artifact type, its subject's digest, its layers."""

    artifact_type: str
    subject: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]

    def signatures(self) -> list[SignatureLayer]:
        """Return the simple-signing layers of a signature manifest; a layer without a base64
        signature is left out (it signs nothing: one bad layer must not hide the good ones)."""
        out = []
        for layer in self.layers[:MAX_SIGNATURES]:
            if layer.media_type != SIMPLE_SIGNING_TYPE:
                continue
            encoded = layer.annotations.get(SIGNATURE_ANNOTATION, "")
            try:
                sig = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                continue
            if not sig:
                continue
            out.append(
                SignatureLayer(
                    payload=layer, signature=sig, key_hint=layer.annotations.get(KEY_ANNOTATION, "")
                )
            )
        return out


def parse_referrer(raw: bytes, *, where: str) -> Referrer:
    """Return the referrer manifest ``raw``; raise ArtifactError if it is not one."""
    data = load_object(raw, where)
    if data.get("mediaType", MANIFEST_TYPE) != MANIFEST_TYPE or not isinstance(data.get("layers"), list):
        raise ArtifactError(f"{where}: not an OCI image manifest")
    subject = Descriptor.from_json(data.get("subject"), where=f"{where}.subject")
    config = Descriptor.from_json(data.get("config"), where=f"{where}.config")
    artifact_type = data.get("artifactType") or config.media_type
    if not isinstance(artifact_type, str):
        raise ArtifactError(f"{where}: 'artifactType' is not a string")
    layers = tuple(
        Descriptor.from_json(d, where=f"{where}.layers[{i}]")
        for i, d in enumerate(typed_field(data, "layers", list, where))
    )
    annotations = data.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ArtifactError(f"{where}.annotations: not an object")
    return Referrer(
        artifact_type=artifact_type,
        subject=subject.digest,
        config=config,
        layers=layers,
        annotations=annotations,
    )


def referrer_manifest(
    *,
    subject: Descriptor,
    artifact_type: str,
    layers: list[Descriptor],
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """Return the bytes of a referrer manifest of ``subject`` (config: the empty JSON descriptor)."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY_JSON), "size": len(EMPTY_JSON)},
        "layers": [layer.to_json() for layer in layers],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)


def signature_layer(payload: bytes, signature: bytes, *, key: str) -> Descriptor:
    """Return the layer descriptor of one signature (``key``: the signer's key id, a hint)."""
    return Descriptor(
        media_type=SIMPLE_SIGNING_TYPE,
        digest=sha256_digest(payload),
        size=len(payload),
        annotations={SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(), KEY_ANNOTATION: key},
    )


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """Return DSSE's pre-authentication encoding: the bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def dsse_envelope(statement: bytes, signatures: list[tuple[str, bytes]]) -> bytes:
    """Return a DSSE envelope of the in-toto ``statement`` with ``(key id, signature)`` pairs."""
    return canonical_json(
        {
            "payloadType": INTOTO_TYPE,
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"keyid": k, "sig": base64.b64encode(s).decode()} for k, s in signatures],
        }
    )


def dsse_statement(envelope: bytes, *, where: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Return the statement bytes and the ``(key id, signature)`` pairs of a DSSE envelope."""
    doc = load_object(envelope, where)
    if doc.get("payloadType") != INTOTO_TYPE:
        raise ArtifactError(f"{where}: payloadType is not {INTOTO_TYPE}")
    try:
        statement = base64.b64decode(typed_field(doc, "payload", str, where), validate=True)
        sigs = [
            (str(s.get("keyid", "")), base64.b64decode(str(s.get("sig", "")), validate=True))
            for s in typed_field(doc, "signatures", list, where)
            if isinstance(s, dict)
        ]
    except binascii.Error as exc:
        raise ArtifactError(f"{where}: not valid base64 ({exc})") from exc
    return statement, sigs
