"""Verify on a target that trusted keys signed the digests about to be installed.

The cryptography is the host's own ``openssl`` (``openssl dgst -sha256 -verify``), never ours:
venv-pull parses the referrers, the simple-signing payloads (artifact/sigformat.py) and the Sigstore
bundles (artifact/sigbundle.py), and asks openssl whether each signature over the exact bytes it
covers holds for a key the policy names. Everything read here is read into memory or a scratch
folder: a refusal leaves the host as it was. Stdlib only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

from .._process import run
from .._text import printable
from ..artifact.sigformat import short_id
from ..artifact.siglisting import Listed, listed_signatures
from ..errors import InstallError
from ..host import trust
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
    listed = listed_signatures(
        digest, reader.source.referrers(digest), manifest=reader.manifest, blob=reader.read
    )
    for item in listed:
        if item.problem:
            found.append(item.problem)
            continue
        key = trusted_signer(rule, item, openssl=openssl, tmp=tmp)
        what = "a signature" if item.form == "simple" else "a Sigstore bundle"
        if key is not None:
            verified.add(key)
        elif item.key_hint and item.key_hint not in rule.key_ids:
            found.append(f"{what} by key {short_id(item.key_hint)}, which the policy does not trust")
        else:
            named = f" {short_id(item.key_hint)}" if item.key_hint else ""
            found.append(f"{what} by key{named} that does not verify (tampered or another key)")
    if verified:
        return tuple(sorted(verified))
    # Key hints and the reasons a referrer is malformed are the store's text: escaped, so that
    # none ends the line, starts a forged one or drives the terminal.
    summary = printable("; ".join(dict.fromkeys(found))) or "no signature"
    raise InstallError(
        f"{where}@{digest}: refused by {rule.source}: expected {rule.expected()}; found {summary}"
    )


def trusted_signer(rule: Rule, item: Listed, *, openssl: str, tmp: Path) -> str | None:
    """Return the id of the trusted key whose signature ``item`` is, or None."""
    (tmp / "payload").write_bytes(item.signed)
    (tmp / "signature").write_bytes(item.signature)
    # The key the signature names first (one openssl run when it is trusted); the name is only
    # a hint: every trusted key is tried before the signature is refused.
    for key in sorted(rule.keys, key=lambda k: k.key_id != item.key_hint):
        if _openssl_verifies(openssl, key, tmp):
            return key.key_id
    return None


def _openssl_verifies(openssl: str, key: TrustedKey, tmp: Path) -> bool:
    argv = [openssl, "dgst", "-sha256", "-verify", str(key.path), "-signature", str(tmp / "signature")]
    # A fixed environment: English answers to read, and no OPENSSL_CONF of the caller's choosing.
    proc = run(
        [*argv, str(tmp / "payload")], env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, check=False, kind="probe"
    )
    if proc.returncode == 0 and "Verified OK" in proc.stdout:
        return True
    if "public key" in proc.stdout.lower() and "Verification failure" not in proc.stdout:
        last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise InstallError(f"{key.path}: openssl cannot use this key ({last})")
    return False
