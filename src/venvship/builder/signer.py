"""Sign artifacts on the build side: every per-platform manifest and the index, as cosign does.

The key is an ECDSA P-256 private key in PEM (what ``openssl ecparam -genkey -name prime256v1``
or ``openssl genpkey`` writes, encrypted or not), read from a file or from an environment variable
(``env://NAME``, a CI secret); its password, if any, from ``VENVSHIP_SIGNING_PASSWORD``. The
signatures use ``cryptography`` (deterministic ECDSA, RFC 6979), so that signing the same digest
again with the same key adds nothing. Two formats: cosign's simple-signing referrers
(artifact/sigformat.py, the default) and cosign v3's Sigstore bundles (artifact/sigbundle.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .._log import logger
from .._process import withhold
from ..artifact.documents import INDEX_TYPE, Descriptor, Index, sha256_digest
from ..artifact.sigbundle import (
    BUNDLE_TYPE,
    CONTENT_ANNOTATION,
    COSIGN_SIGN_PREDICATE,
    PREDICATE_ANNOTATION,
    dsse_bundle,
    sign_statement,
)
from ..artifact.sigformat import (
    DSSE_TYPE,
    EMPTY_JSON,
    INTOTO_TYPE,
    SIG_ARTIFACT_TYPE,
    dsse_envelope,
    dsse_pae,
    dsse_statement,
    key_id,
    parse_referrer,
    referrer_manifest,
    short_id,
    signature_layer,
    simple_signing_payload,
)
from ..artifact.siglisting import SignatureFormat, listed_signatures
from ..errors import BuildError
from ..oci.attach import Store

PASSWORD_ENV = "VENVSHIP_SIGNING_PASSWORD"
MAX_ENVELOPE = 4 << 20  # a provenance statement is a few KiB


@dataclass(frozen=True)
class SigningKey:
    """A private signing key, its public key (DER) and its id, and the format it signs in."""

    private: ec.EllipticCurvePrivateKey
    public_der: bytes
    key_id: str
    name: str  # where it came from, for messages (never the key itself)
    signature_format: SignatureFormat = "simple"

    def sign(self, data: bytes) -> bytes:
        """Return the ASN.1 DER ECDSA-SHA256 signature of ``data``."""
        return self.private.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))

    def verifies(self, data: bytes, signature: bytes) -> bool:
        """Return True if ``signature`` over ``data`` is this key's."""
        try:
            self.private.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def public_pem(self) -> bytes:
        """Return the public key as PEM: the file a target's policy names."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def load_signing_key(spec: str, *, signature_format: SignatureFormat = "simple") -> SigningKey:
    """Return the signing key at ``spec``: a PEM file, or ``env://NAME`` for an environment variable;
    it signs in ``signature_format``.

    Example: ``load_signing_key("env://VENVSHIP_SIGNING_KEY")``
    """
    # Taken out of the environment as soon as read: no child (a dependency's build code) inherits it.
    if spec.startswith("env://"):
        value = os.environ.pop(spec[len("env://") :], "")
        if not value:
            raise BuildError(f"{spec}: the environment variable is not set or empty")
        pem = value.encode()
    else:
        try:
            pem = Path(spec).read_bytes()
        except OSError as exc:
            raise BuildError(f"{spec}: the signing key cannot be read ({exc.strerror or exc})") from exc
    if b"ENCRYPTED SIGSTORE PRIVATE KEY" in pem or b"ENCRYPTED COSIGN PRIVATE KEY" in pem:
        raise BuildError(
            f"{spec}: a cosign-encrypted key; give venvship the PEM key it was made from "
            "(cosign import-key-pair makes a cosign key from a PEM one)"
        )
    password = os.environ.pop(PASSWORD_ENV, None)
    # Another variable may hold the same text (a CI job's copy): no untrusted child gets it either.
    withhold(pem.decode("ascii", "replace"), password or "")
    try:
        key = serialization.load_pem_private_key(pem, password=password.encode() if password else None)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise BuildError(f"{spec}: {exc} (the password comes from {PASSWORD_ENV})") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BuildError(f"{spec}: not a PEM private key, or the wrong password ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise BuildError(
            f"{spec}: not an ECDSA P-256 key (make one: openssl ecparam -genkey -name prime256v1)"
        )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(
        private=key, public_der=der, key_id=key_id(der), name=spec, signature_format=signature_format
    )


@dataclass(frozen=True)
class SignResult:
    """What :func:`sign_artifact` did: the digests it signed now, and those this key had signed."""

    where: str
    key_id: str
    signed: tuple[str, ...]
    already: tuple[str, ...]

    def summary(self) -> str:
        """Return the one line the CLI prints."""
        return (
            f"{self.where}: signed {len(self.signed)} digest(s) with key {short_id(self.key_id)}"
            f" ({len(self.already)} signed by it before)"
        )


def sign_artifact(store: Store, reference: str, key: SigningKey) -> SignResult:
    """Sign what ``reference`` names in ``store``: an index and each of its manifests, or one manifest.

    Example: ``sign_artifact(open_store(parse_ref("oci:build/oci:demo:1.0")), "1.0", key)``
    """
    top, raw = store.get_manifest(reference)
    where = f"{store.where}{'@' if ':' in reference else ':'}{reference}"  # a digest, or a tag
    subjects = [top]
    if top.media_type == INDEX_TYPE:
        subjects += list(Index.from_bytes(raw, where=where).manifests)
    signed: list[str] = []
    already: list[str] = []
    for subject in subjects:
        (signed if sign_digest(store, subject, key) else already).append(subject.digest)
        if subject.media_type != INDEX_TYPE:
            sign_provenance(store, subject, key)
    return SignResult(where=where, key_id=key.key_id, signed=tuple(signed), already=tuple(already))


def sign_digest(store: Store, subject: Descriptor, key: SigningKey) -> bool:
    """Attach ``key``'s signature of ``subject`` as a referrer, in the key's format; False if it had
    signed it already in that format."""
    if _signed_before(store, subject.digest, key):
        return False
    if key.signature_format == "bundle":
        # cosign v3's layout (BUNDLE_SPEC.md): the bundle as the one layer, its content and
        # predicate type named in annotations that the referrers list repeats.
        statement = sign_statement(subject.digest)
        blob = dsse_bundle(statement, key.sign(dsse_pae(INTOTO_TYPE, statement)), key_id=key.key_id)
        layer = Descriptor(media_type=BUNDLE_TYPE, digest=sha256_digest(blob), size=len(blob))
        annotations = {CONTENT_ANNOTATION: "dsse-envelope", PREDICATE_ANNOTATION: COSIGN_SIGN_PREDICATE}
        manifest = referrer_manifest(
            subject=subject, artifact_type=BUNDLE_TYPE, layers=[layer], annotations=annotations
        )
    else:
        blob = simple_signing_payload(store.identity, subject.digest)
        layer = signature_layer(blob, key.sign(blob), key=key.key_id)
        manifest = referrer_manifest(subject=subject, artifact_type=SIG_ARTIFACT_TYPE, layers=[layer])
    store.attach(manifest, [EMPTY_JSON, blob])
    logger.info(
        "%s@%s: signed with key %s (%s)",
        store.where,
        subject.digest,
        short_id(key.key_id),
        key.signature_format,
    )
    return True


def _about(statement: bytes, digest: str) -> bool:
    """Whether the in-toto ``statement`` names ``digest`` as its subject."""
    try:
        subjects = json.loads(statement).get("subject") or []
        return any(f"sha256:{s['digest']['sha256']}" == digest for s in subjects)
    except (ValueError, TypeError, KeyError, AttributeError):
        return False


def sign_provenance(store: Store, subject: Descriptor, key: SigningKey) -> bool:
    """Attach the provenance of ``subject`` again with ``key``'s DSSE signature added; False if
    it has none this process made about ``subject``, or ``key`` signed it already.

    A statement someone else attached is never signed: a signature vouches that this build made it.
    """
    from .evidence import attach_provenance, made_here  # evidence imports the SBOM and provenance makers

    statement: bytes | None = None
    sigs: list[tuple[str, bytes]] = []
    for entry in store.referrers(subject.digest):
        if entry.artifact_type not in (INTOTO_TYPE, None):
            continue
        where = f"{store.where}@{entry.digest}"
        referrer = parse_referrer(store.get_manifest(entry.digest)[1], where=where)
        layers = [d for d in referrer.layers if d.media_type == DSSE_TYPE and d.size <= MAX_ENVELOPE]
        if referrer.artifact_type != INTOTO_TYPE or referrer.subject != subject.digest or not layers:
            continue
        found, found_sigs = dsse_statement(store.blob(layers[0]), where=where)
        if not (made_here(found) and _about(found, subject.digest)):
            continue
        statement, sigs = found, found_sigs
        if any(key.verifies(dsse_pae(INTOTO_TYPE, statement), sig) for _, sig in sigs):
            return False
    if statement is None:
        return False
    envelope = dsse_envelope(statement, [*sigs, (key.key_id, key.sign(dsse_pae(INTOTO_TYPE, statement)))])
    return attach_provenance(store, subject, envelope)


def _signed_before(store: Store, digest: str, key: SigningKey) -> bool:
    listed = listed_signatures(
        digest, store.referrers(digest), manifest=lambda d: store.get_manifest(d)[1], blob=store.blob
    )
    return any(
        not item.problem and item.form == key.signature_format and key.verifies(item.signed, item.signature)
        for item in listed
    )
