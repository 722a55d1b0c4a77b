"""Sign only what was verified: content another job pushed must already carry a trusted signature.

A signing job that signs whatever a registry serves lends its key to anyone who can push. Before
it signs an index (or re-signs what a registry holds), every platform manifest must carry a
signature by a key the job trusts: its own key's public half, plus any it names. The check is the
targets' own (verify/signature.py, the host's ``openssl``).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from ..artifact.documents import INDEX_TYPE, Descriptor, Index
from ..artifact.sigformat import key_id, public_key_der
from ..errors import ArtifactError, InstallError, UnverifiedContent
from ..oci.layout import Layout
from ..oci.reference import LayoutRef, Ref, RegistryRef
from ..oci.registry import RegistryClient, RegistrySource
from ..oci.source import Access, Source, open_source
from ..verify.policy import Rule, TrustedKey
from ..verify.select import BlobReader
from ..verify.signature import verify_signed
from .signer import SigningKey, sign_artifact

_OWN_KEY = "signing-key.pub"  # the signing key's public half, written to a temporary folder


def trusted_keys(key: SigningKey, extra: Sequence[Path], folder: Path) -> Rule:
    """Return the rule "signed by ``key`` or one of the public keys ``extra``" (files kept in ``folder``)."""
    own = folder / _OWN_KEY
    own.write_bytes(key.public_pem())
    keys = [TrustedKey(path=own, key_id=key.key_id)]
    for path in extra:
        try:
            der = public_key_der(path.read_text(encoding="ascii"), where=str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{path}: trusted key cannot be read ({exc})") from exc
        keys.append(TrustedKey(path=path, key_id=key_id(der)))
    return Rule(source="the signing job's trusted keys", require_signature=True, keys=tuple(keys))


def require_signed(source: Source, digests: Sequence[str], rule: Rule, *, where: str) -> None:
    """Raise UnverifiedContent naming the first of ``digests`` no key of ``rule`` signed."""
    with tempfile.TemporaryDirectory(prefix="venvship-vouch-") as tmp:
        reader = BlobReader(source, Layout.create(Path(tmp)))
        try:
            verify_signed(rule, reader, tuple(digests), where=where)
        except InstallError as exc:
            said = str(exc)
            for k in rule.keys:  # name the key the user passed, not its temporary public half
                if k.path.name == _OWN_KEY:
                    said = said.replace(str(k.path), f"the signing key ({k.key_id[:19]})")
            raise UnverifiedContent(
                f"{said}: not signing content this build neither made nor verified "
                "(name the build jobs' outputs with --built FILE, a key that signed it with --trust-key PUB, "
                "or vouch for it yourself with --vouch-unverified)"
            ) from None
        finally:
            reader.close()


def subject_digests(source: Source, reference: str) -> list[str]:
    """Return the digests ``sign_artifact`` signs for ``reference``: the top one, and an index's manifests."""
    top, raw = source.get_manifest(reference)
    if top.media_type != INDEX_TYPE:
        return [top.digest]
    return [top.digest, *(m.digest for m in Index.from_bytes(raw, where=reference).manifests)]


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def built_manifests(paths: Sequence[Path]) -> frozenset[tuple[str, str]]:
    """Return the (recipe name, manifest digest) pairs that ``venvship build --json`` outputs at
    ``paths`` record.

    A signing job vouches for these: its own pipeline's build jobs made them, and their outputs
    travel in the CI system's job artifacts, which a registry pusher cannot write. A digest is
    vouched for only in its own recipe's repository: another recipe's build is not this one's.
    """
    found: set[tuple[str, str]] = set()
    for path in paths:
        try:
            recipes = json.loads(path.read_text(encoding="utf-8"))["recipes"]
            made = [
                (str(entry["name"]), str(entry["digest"]))
                for entry in recipes
                if entry.get("status") != "outdated"
            ]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(
                f"{path}: not the output of `venvship build --json` ({type(exc).__name__}: {exc})"
            ) from None
        bad = [d for _, d in made if not _DIGEST.fullmatch(d)]
        if bad:
            raise ArtifactError(f"{path}: recipes[].digest {bad[0]!r} is not a sha256 digest")
        found.update(made)
    return frozenset(found)


def require_verified(
    ref: Ref, reference: str, key: SigningKey, trusted: Sequence[Path], access: Access | None
) -> str:
    """Return the digest ``reference`` names at ``ref``; raise UnverifiedContent unless everything
    ``sign_artifact`` would sign there is signed already by ``key`` or one of the public keys
    ``trusted`` (a key rollover names the old key here).

    A tag asked for again may name other content (a server chooses per answer): what is signed
    after this must be read by the digest returned.
    """
    source = open_source(ref, access)
    with tempfile.TemporaryDirectory(prefix="venvship-trust-") as tmp:
        rule = trusted_keys(key, trusted, Path(tmp))
        digests = subject_digests(source, reference)
        require_signed(source, digests, rule, where=str(ref))
    return digests[0]


def require_layout_made(
    layout: Layout, name: str, tag: str, key: SigningKey, made: frozenset[tuple[str, str]]
) -> None:
    """Raise UnverifiedContent unless every platform manifest of the layout's index ``name:tag`` is
    one of ``made`` (this build's) or already signed by ``key``: the index merges whatever platform
    tags the folder holds, and the key vouches only for what this build made."""
    source = open_source(LayoutRef(path=layout.root, name=name, tag=tag))
    others = [d for d in subject_digests(source, tag)[1:] if (name, d) not in made]
    with tempfile.TemporaryDirectory(prefix="venvship-layout-") as tmp:
        rule = trusted_keys(key, (), Path(tmp))
        require_signed(source, others, rule, where=f"oci:{layout.root}:{name}:{tag}")


def index_signer(
    ref: RegistryRef,
    client: RegistryClient,
    key: SigningKey,
    *,
    made: frozenset[tuple[str, str]] = frozenset(),
    trusted: Sequence[Path] = (),
    report: Callable[[str], object] = lambda line: None,
) -> Callable[[Descriptor, Sequence[str]], None]:
    """Return ``merge_registry_index``'s ``before_tag`` that signs the index and its platform manifests.

    It refuses (UnverifiedContent, nothing signed or tagged) unless every platform manifest is one
    of ``made`` (recipe name and digest: this build, or this pipeline's build jobs) for the recipe
    ``ref`` names, or already signed by ``key`` or a ``trusted`` public key: a platform tag someone
    without the key moved never gets signed, nor another recipe's manifest put under this one's tag.
    """
    name = ref.repository.rsplit("/", 1)[-1]

    def sign(index: Descriptor, children: Sequence[str]) -> None:
        others = [digest for digest in children if (name, digest) not in made]
        with tempfile.TemporaryDirectory(prefix="venvship-index-") as tmp:
            rule = trusted_keys(key, trusted, Path(tmp))
            require_signed(RegistrySource(ref, client=client), others, rule, where=str(ref))
        from ..oci.attach import RegistryStore

        report(sign_artifact(RegistryStore(client, ref.repository), index.digest, key).summary())

    return sign
