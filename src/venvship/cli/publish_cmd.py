"""``venvship publish``, ``sign`` and ``index``: moving built artifacts to a registry, vouching for
them, and merging platforms into one index."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .._units import human_size
from ..errors import VenvshipError
from .outcome import add_command, add_output_options, json_text
from .venvship_args import (
    add_format_option,
    add_immutable_option,
    add_registry_options,
    add_sign_option,
    add_vouch_options,
    registry_access,
    registry_ref,
    sign_key,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..builder.signer import SigningKey
    from ..oci.publish import PublishResult
    from ..oci.reference import HttpLayoutRef, RegistryRef
    from ..oci.source import Access

    _Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def publish(
    access: Access, layout_path: Path, refs: list[str], dest: RegistryRef, *, immutable_tags: bool
) -> PublishResult:
    from ..oci.layout import Layout
    from ..oci.publish import publish_layout
    from ..oci.source import registry_client

    client = registry_client(dest.registry, access)
    return publish_layout(Layout.open(layout_path), refs, dest, client, immutable_tags=immutable_tags)


def sign_layout_refs(layout_path: Path, refs: list[str], key: SigningKey) -> None:
    from ..builder.signer import sign_artifact
    from ..oci.attach import LayoutStore
    from ..oci.layout import Layout

    layout = Layout.open(layout_path)
    for ref in refs:
        name, _, tag = ref.rpartition(":")
        print(sign_artifact(LayoutStore(layout, name), tag, key).summary())


def published_line(dest_text: str, result: PublishResult) -> str:
    if not (result.tags_changed or result.blobs_uploaded or result.blobs_mounted or result.referrers):
        return f"{dest_text}: unchanged ({len(result.tags)} tags, {result.blobs_skipped} blobs already there)"
    return (
        f"{dest_text}: published {', '.join(result.tags)}; blobs {result.blobs_uploaded} uploaded "
        f"({human_size(result.bytes_uploaded)}), {result.blobs_mounted} mounted, {result.blobs_skipped} already there"
        f"; {result.referrers} referrers copied"
    )


def cmd_publish(args: argparse.Namespace) -> int:
    from ..oci.layout import Layout
    from ..oci.reference import LayoutRef, parse_ref
    from ..oci.referrers import is_referrers_tag

    src = parse_ref(args.src)
    key = sign_key(args)
    if not isinstance(src, LayoutRef):
        return _fetch(args, src, key)
    refs = [src.ref_name] if src.ref_name else sorted(Layout.open(src.path).refs())
    refs = [r for r in refs if r and not is_referrers_tag(r.rpartition(":")[2])]
    if not refs:
        raise VenvshipError(f"{args.src}: nothing to publish (name NAME:TAG)")
    dest = registry_ref(args.dest, "a registry namespace (HOST[:PORT]/NAMESPACE)")
    if key is not None:  # in the layout first: the signatures go up before the tags
        sign_layout_refs(src.path, refs, key)
    result = publish(registry_access(args, dest), src.path, refs, dest, immutable_tags=args.immutable_tags)
    print(json_text(result.to_json(), indent=2) if args.json else published_line(args.dest, result))
    return 0


def _fetch(args: argparse.Namespace, src: RegistryRef | HttpLayoutRef, key: SigningKey | None) -> int:
    """``publish HOST/REPO:TAG oci:DIR`` (or a served layout's ``oci+https://…:NAME:TAG``): copy an
    artifact and its referrers into a layout."""
    from ..oci.attach import RegistryStore
    from ..oci.layout import Layout
    from ..oci.publish import FetchStore, fetch_to_layout
    from ..oci.reference import LayoutRef, RegistryRef, parse_ref
    from ..oci.source import registry_client

    dest = parse_ref(args.dest)
    if not isinstance(dest, LayoutRef) or dest.name or not src.tag:
        what = (
            "a registry tag HOST/REPO:TAG" if isinstance(src, RegistryRef) else "a served layout's NAME:TAG"
        )
        raise VenvshipError(f"{args.src} {args.dest}: copy {what} into a layout oci:DIR")
    verified = None
    if key is not None and not args.vouch_unverified:
        from ..builder.vouch import require_verified

        trusted = [Path(p) for p in args.trust_key or ()]
        verified = require_verified(src, src.tag, key, trusted, registry_access(args, src))
    store: FetchStore
    if isinstance(src, RegistryRef):
        store = RegistryStore(registry_client(src.registry, registry_access(args, src)), src.repository)
        name = src.repository.rsplit("/", 1)[-1]
    else:
        from ..oci.httplayout import HttpLayoutSource

        store, name = HttpLayoutSource(src, access=registry_access(args, src)), src.name or ""
    # What was verified is copied (and signed), by its digest: the tag, asked for again, may name
    # something else (a web server or registry chooses what each answer says).
    result = fetch_to_layout(store, src.tag, Layout.create(dest.path), name, digest=verified)
    if key is not None:
        sign_layout_refs(dest.path, [f"{name}:{src.tag}"], key)
    print(json_text(result.to_json(), indent=2) if args.json else published_line(args.dest, result))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from ..builder.signer import load_signing_key, sign_artifact
    from ..oci.attach import open_store
    from ..oci.reference import RegistryRef, parse_ref
    from ..verify.select import reference_of

    ref = parse_ref(args.ref)
    key = load_signing_key(args.key, signature_format=args.signature_format)
    reference = reference_of(ref)
    if isinstance(ref, RegistryRef) and not args.vouch_unverified:
        from ..builder.vouch import require_verified

        trusted = [Path(p) for p in args.trust_key or ()]
        # Signed by the digest verified: the tag, asked for again, may name something else.
        reference = require_verified(ref, reference, key, trusted, registry_access(args, ref))
    summary = sign_artifact(open_store(ref, registry_access(args, ref)), reference, key).summary()
    print(json_text({"ref": args.ref, "signed": summary}) if args.json else summary)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from ..oci.publish import merge_registry_index
    from ..oci.reference import RegistryRef, parse_ref
    from ..oci.source import registry_client

    ref = parse_ref(args.ref)
    if not isinstance(ref, RegistryRef) or not ref.tag:
        raise VenvshipError(f"{args.ref}: name the registry repository and version, HOST/NS/NAME:VERSION")
    key = sign_key(args)
    if args.built and key is None:
        raise VenvshipError("--built: only with --sign-key (it names what the signing job may sign)")
    client = registry_client(ref.registry, registry_access(args, ref))
    sign = None
    if key is not None:
        from ..builder.vouch import built_manifests, index_signer

        sign = index_signer(
            ref,
            client,
            key,
            made=built_manifests([Path(p) for p in args.built or ()]),
            trusted=[Path(p) for p in args.trust_key or ()],
            report=(lambda line: None) if args.json else print,
        )
    digest = merge_registry_index(
        client, ref.repository, ref.tag, before_tag=sign, immutable_tag=args.immutable_tags
    )
    print(json_text({"ref": args.ref, "digest": digest}) if args.json else f"{args.ref}: index {digest}")
    return 0


def _publish_parser(sub: _Sub) -> None:
    pub = add_command(
        sub,
        "publish",
        help="copy artifacts and their referrers from a layout to a registry (blobs first, tags "
        "last), or a registry tag into a layout",
        example="venvship publish oci:build/oci registry.example.com/venvs",
    )
    pub.add_argument(
        "src",
        metavar="SRC",
        help="oci:DIR[:NAME:TAG], HOST[:PORT]/REPO:TAG, or oci+https://HOST/PATH:NAME:TAG",
    )
    pub.add_argument(
        "dest", metavar="DEST", help="HOST[:PORT]/NAMESPACE, or oci:DIR for a registry or oci+https:// SRC"
    )
    add_immutable_option(pub)
    add_registry_options(pub)
    add_sign_option(pub, "sign what is published with this key (in a layout source first)")
    add_vouch_options(pub, "with --sign-key and a registry SRC")
    add_output_options(pub)
    pub.set_defaults(func=cmd_publish)


def _index_parser(sub: _Sub) -> None:
    ix = add_command(
        sub,
        "index",
        help="merge the per-platform tags VERSION-* into the index tag VERSION",
        example="venvship index registry.example.com/venvs/demo:1.0",
    )
    ix.add_argument("ref", metavar="REF", help="HOST[:PORT]/NAMESPACE/NAME:VERSION")
    add_registry_options(ix)
    add_sign_option(
        ix,
        "sign the index and its platform manifests with this key before tagging it; refused unless "
        "every platform manifest is named by a --built file or signed by this key or a --trust-key",
    )
    ix.add_argument(
        "--built",
        action="extend",
        nargs="+",
        metavar="FILE",
        help="with --sign-key: a build job's `venvship build --json` output; "
        "the manifests it names count as this pipeline's, each in its own recipe's repository (repeatable)",
    )
    ix.add_argument(
        "--trust-key",
        action="append",
        metavar="PUB",
        help="with --sign-key: also accept platform manifests signed by this public key (repeatable)",
    )
    add_immutable_option(ix)
    add_output_options(ix)
    ix.set_defaults(func=cmd_index)


def _sign_parser(sub: _Sub) -> None:
    sg = add_command(
        sub,
        "sign",
        help="sign an artifact: its index and every platform manifest",
        example="venvship sign registry.example.com/venvs/demo:1.0 --key env://VENVSHIP_SIGNING_KEY",
    )
    sg.add_argument("ref", metavar="REF", help="oci:DIR:NAME:TAG or HOST[:PORT]/REPO:TAG")
    sg.add_argument(
        "--key",
        required=True,
        metavar="KEY",
        help="ECDSA P-256 private key: a PEM file, or env://NAME (password: $VENVSHIP_SIGNING_PASSWORD)",
    )
    add_format_option(sg, default="simple")
    add_vouch_options(sg, "signing a registry's content")
    add_registry_options(sg)
    add_output_options(sg)
    sg.set_defaults(func=cmd_sign)


def add_parsers(sub: _Sub) -> None:
    """Add ``publish``, ``index`` and ``sign`` to ``sub``."""
    for add in (_publish_parser, _index_parser, _sign_parser):
        add(sub)
