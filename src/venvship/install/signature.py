"""Verify on a target that trusted keys signed the digests about to be installed.

The cryptography is the host's own ``openssl`` (``openssl dgst -sha256 -verify``), never ours:
venv-pull parses the referrers and the simple-signing payload (sigformat.py) and asks openssl
whether the signature over the payload's exact bytes holds for a key the policy names. Everything
read here is read into memory or a scratch folder: a refusal leaves the host as it was. Stdlib only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

from .._process import run
from ..errors import ArtifactError, InstallError
from ..sigformat import (
    MAX_PAYLOAD,
    MAX_SIGNATURES,
    SIG_ARTIFACT_TYPE,
    SignatureLayer,
    parse_referrer,
    short_id,
    signed_digest,
)
from . import trust
from .policy import Rule, TrustedKey
from .select import BlobReader

OPENSSL_PACKAGE = "openssl"  # the same name on Debian, Ubuntu, RHEL, Fedora, SUSE and Alpine


def find_openssl() -> str:
    """Return the host's ``openssl``, or raise InstallError naming the distro package to install."""
    found = trust.system_program("openssl")
    if found is None:
        raise InstallError(
            f"openssl not found on the system PATH ({':'.join(trust.SYSTEM_PATH)}); the trust policy "
            f"needs it to verify signatures: install the distro package {OPENSSL_PACKAGE} "
            f"(apt-get install {OPENSSL_PACKAGE}, or dnf install {OPENSSL_PACKAGE})"
        )
    trust.check_tree(Path(os.path.realpath(found)), what="openssl")
    return found


def verify_signed(
    rule: Rule, reader: BlobReader, digests: tuple[str, ...], *, where: str
) -> Mapping[str, tuple[str, ...]]:
    """Return, for each of ``digests``, the ids of the trusted keys whose signature over it holds;
    raise InstallError (one line: what was expected, what was found) if one has none.

    Nothing is asked of the source when ``rule`` requires no signature.

    Example: ``verify_signed(rule, reader, (selected.ref_digest, selected.digest), where=str(ref))``
    """
    if not rule.require_signature:
        return {}
    openssl = find_openssl()
    with tempfile.TemporaryDirectory(prefix="venv-pull-verify-") as tmp:
        return {d: _verify_one(rule, reader, d, openssl=openssl, tmp=Path(tmp), where=where) for d in digests}


def _verify_one(
    rule: Rule, reader: BlobReader, digest: str, *, openssl: str, tmp: Path, where: str
) -> tuple[str, ...]:
    found: list[str] = []
    verified: set[str] = set()
    at = f"{where}@{digest}"
    # skopeo 1.9 drops artifactType from index entries it copies: an entry without one is read.
    entries = [e for e in reader.source.referrers(digest) if e.artifact_type in (SIG_ARTIFACT_TYPE, None)]
    for entry in entries[:MAX_SIGNATURES]:
        referrer = parse_referrer(reader.manifest(entry.digest), where=f"{at} referrer {entry.digest}")
        if referrer.artifact_type != SIG_ARTIFACT_TYPE:
            continue
        if referrer.subject != digest:
            found.append(f"a signature listed for {digest} whose subject is {referrer.subject}")
            continue
        for layer in referrer.signatures(where=f"{at} signature {entry.digest}"):
            key = _check_layer(rule, reader, layer, digest, openssl=openssl, tmp=tmp, found=found)
            if key is not None:
                verified.add(key)
    if verified:
        return tuple(sorted(verified))
    summary = "; ".join(dict.fromkeys(found)) or "no signature"
    raise InstallError(f"{at}: refused by {rule.source}: expected {rule.expected()}; found {summary}")


def _check_layer(
    rule: Rule,
    reader: BlobReader,
    layer: SignatureLayer,
    digest: str,
    *,
    openssl: str,
    tmp: Path,
    found: list[str],
) -> str | None:
    """Return the id of the trusted key that verifies ``layer`` over ``digest``, or None (and why)."""
    if layer.payload.size > MAX_PAYLOAD:
        found.append(f"a signature payload of {layer.payload.size} bytes (too large)")
        return None
    payload = reader.read(layer.payload)
    try:
        named = signed_digest(payload, where="signature payload")
    except ArtifactError as exc:
        found.append(str(exc))
        return None
    if named != digest:
        found.append(f"a signature over another digest ({named})")
        return None
    (tmp / "payload").write_bytes(payload)
    (tmp / "signature").write_bytes(layer.signature)
    # The key the signature names first (one openssl run when it is trusted); the name is only
    # a hint: every trusted key is tried before the signature is refused.
    for key in sorted(rule.keys, key=lambda k: k.key_id != layer.key_hint):
        if _openssl_verifies(openssl, key, tmp):
            return key.key_id
    if layer.key_hint and layer.key_hint not in rule.key_ids:
        found.append(f"a signature by key {short_id(layer.key_hint)}, which the policy does not trust")
    else:
        named_key = f" {short_id(layer.key_hint)}" if layer.key_hint else ""
        found.append(f"a signature by key{named_key} that does not verify (tampered or another key)")
    return None


def _openssl_verifies(openssl: str, key: TrustedKey, tmp: Path) -> bool:
    argv = [openssl, "dgst", "-sha256", "-verify", str(key.path), "-signature", str(tmp / "signature")]
    # A fixed environment: English answers to read, and no OPENSSL_CONF of the caller's choosing.
    proc = run(
        [*argv, str(tmp / "payload")], env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, check=False, timeout=60
    )
    if proc.returncode == 0 and "Verified OK" in proc.stdout:
        return True
    if "public key" in proc.stdout.lower() and "Verification failure" not in proc.stdout:
        last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise InstallError(f"{key.path}: openssl cannot use this key ({last})")
    return False
