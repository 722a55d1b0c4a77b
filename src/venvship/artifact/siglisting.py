"""The signatures listed for a digest, in either form venvship reads: cosign's simple-signing
referrers (sigformat.py) and Sigstore bundles (sigbundle.py).

Nothing here checks a signature: each :class:`Listed` holds the exact bytes a signature covers,
the signature and the key hint, and the caller checks them with the key it trusts. Stdlib only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Literal

from ..errors import ArtifactError
from .documents import Descriptor
from .sigbundle import BUNDLE_TYPE, BUNDLE_TYPES, MAX_BUNDLE, parse_bundle, problem
from .sigformat import MAX_PAYLOAD, MAX_SIGNATURES, SIG_ARTIFACT_TYPE, Referrer, parse_referrer, signed_digest

SignatureFormat = Literal["simple", "bundle"]
SIGNATURE_FORMATS: tuple[SignatureFormat, ...] = ("simple", "bundle")


@dataclass(frozen=True)
class Listed:
    """One signature listed for a digest: what it covers (``signed``), the signature, the key it
    names (a hint), its format; or ``problem``, what is wrong with it (for a refusal line)."""

    signed: bytes = b""
    signature: bytes = b""
    key_hint: str = ""
    form: SignatureFormat = "simple"
    problem: str = ""


def listed_signatures(
    digest: str,
    entries: Iterable[Descriptor],
    *,
    manifest: Callable[[str], bytes],
    blob: Callable[[Descriptor], bytes],
) -> Iterator[Listed]:
    """Yield each signature in the referrers ``entries`` of ``digest`` that signs ``digest``, and a
    :class:`Listed` with a ``problem`` for each one that does not (another subject, another digest,
    a malformed manifest, payload or bundle).

    ``manifest(digest)`` and ``blob(descriptor)`` return verified bytes; entries without an
    ``artifactType`` are read, since skopeo 1.9 drops it from index entries it copies.

    At most :data:`MAX_SIGNATURES` are yielded in all: each costs the caller an openssl run per
    trusted key, and a store may list that many referrers of that many layers each.

    Example: ``[s for s in listed_signatures(d, source.referrers(d), manifest=m, blob=b) if not s.problem]``
    """
    # Lazy: what lies past the bound is never fetched.
    return itertools.islice(_listed(digest, entries, manifest=manifest, blob=blob), MAX_SIGNATURES)


def _listed(
    digest: str,
    entries: Iterable[Descriptor],
    *,
    manifest: Callable[[str], bytes],
    blob: Callable[[Descriptor], bytes],
) -> Iterator[Listed]:
    wanted = [e for e in entries if e.artifact_type in (SIG_ARTIFACT_TYPE, BUNDLE_TYPE, None)]
    for entry in wanted[:MAX_SIGNATURES]:
        try:
            referrer = parse_referrer(manifest(entry.digest), where=f"referrer {entry.digest}")
        except ArtifactError as exc:
            yield Listed(problem=f"a malformed referrer ({exc})")
            continue
        if referrer.artifact_type not in (SIG_ARTIFACT_TYPE, BUNDLE_TYPE):
            continue
        if referrer.subject != digest:
            yield Listed(problem=f"a signature listed for {digest} whose subject is {referrer.subject}")
            continue
        if referrer.artifact_type == BUNDLE_TYPE:
            yield _bundle(referrer, digest, manifest=manifest, blob=blob)
            continue
        yield from _simple(referrer, digest, blob=blob)


def _simple(referrer: Referrer, digest: str, *, blob: Callable[[Descriptor], bytes]) -> Iterator[Listed]:
    for layer in referrer.signatures():
        if layer.payload.size > MAX_PAYLOAD:
            yield Listed(problem=f"a signature payload of {layer.payload.size} bytes (too large)")
            continue
        try:
            # A payload the store cannot give (missing, other bytes) signs nothing: one refusal
            # reason, never the end of the listing, or it would hide the good signatures after it.
            payload = blob(layer.payload)
            named = signed_digest(payload, where="signature payload")
        except ArtifactError as exc:
            yield Listed(problem=str(exc))
            continue
        if named != digest:
            yield Listed(problem=f"a signature over another digest ({named})")
            continue
        yield Listed(signed=payload, signature=layer.signature, key_hint=layer.key_hint)


def _bundle(
    referrer: Referrer,
    digest: str,
    *,
    manifest: Callable[[str], bytes],
    blob: Callable[[Descriptor], bytes],
) -> Listed:
    """The bundle referrer's one layer, as cosign lays it out (BUNDLE_SPEC.md), checked to sign ``digest``."""
    if len(referrer.layers) != 1 or referrer.layers[0].media_type not in BUNDLE_TYPES:
        return Listed(form="bundle", problem=f"a bundle referrer without exactly one {BUNDLE_TYPE} layer")
    layer = referrer.layers[0]
    if layer.size > MAX_BUNDLE:
        return Listed(form="bundle", problem=f"a bundle of {layer.size} bytes (too large)")
    try:
        bundle = parse_bundle(blob(layer), where=f"bundle {layer.digest}")
    except ArtifactError as exc:
        return Listed(form="bundle", problem=f"a malformed bundle ({exc})")
    wrong = problem(bundle, digest)
    if wrong:
        return Listed(form="bundle", problem=wrong)
    # A message signature covers the message itself: here, the manifest's own (verified) bytes.
    signed = bundle.signed if bundle.kind == "dsse" else manifest(digest)
    return Listed(signed=signed, signature=bundle.signature, key_hint=bundle.key_hint, form="bundle")
