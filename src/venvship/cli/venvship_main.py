"""``venvship``: the build side. The only place that parses argv, prints and exits for it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .. import __version__
from .._process import hide_process, withhold
from .._units import human_size
from ..errors import VenvshipError
from .cache_cmd import add_parser as add_cache
from .importrole_cmd import add_parser as add_import_role
from .install_args import add_install_options
from .outcome import CommandParser, add_command, add_output_options, json_text, run_cli
from .recipes_cmd import add_parsers as add_recipe_commands

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..builder.recipebuild import BuildOptions
    from ..builder.signer import SigningKey
    from ..inspect import Attached
    from ..oci.publish import PublishResult
    from ..oci.reference import HttpLayoutRef, Ref, RegistryRef
    from ..oci.source import Access

    _Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "venvship"


def _access(args: argparse.Namespace, *refs: Ref) -> Access:
    """The registry options of ``args``; the password is read from stdin once, here.

    ``--username`` is for the registry (or web server) of ``refs`` (the command's destination, or its
    one source): any other registry the command reaches (``--reuse-from``) gets its own stored login.
    """
    from ..oci.auth import Credentials
    from ..oci.reference import HttpLayoutRef, RegistryRef
    from ..oci.source import Access

    creds, host = None, None
    if args.username:
        if not args.password_stdin:
            raise VenvshipError("--username needs --password-stdin (passwords never go on the command line)")
        hosts = sorted(
            {r.registry.lower() for r in refs if isinstance(r, RegistryRef)}
            | {r.host.lower() for r in refs if isinstance(r, HttpLayoutRef)}  # a web server's login
        )
        if len(hosts) != 1:
            raise VenvshipError(
                "--username: credentials are for one registry, and this command names "
                + (f"several ({', '.join(hosts)})" if hosts else "none")
                + "; log in to each with docker login instead"
            )
        host = hosts[0]
        creds = Credentials(username=args.username, password=sys.stdin.readline().rstrip("\n"))
        withhold(creds.password)  # the job's environment may hold it too (CI_REGISTRY_PASSWORD)
    realms = tuple(h.lower() for h in args.token_realm_host or ())
    return Access(
        insecure=args.insecure,
        ca_file=args.ca_file,
        credentials=creds,
        credentials_for=host,
        token_realm_hosts=realms,
    )


def _publish(
    access: Access, layout_path: Path, refs: list[str], dest: RegistryRef, *, immutable_tags: bool
) -> PublishResult:
    from ..oci.layout import Layout
    from ..oci.publish import publish_layout
    from ..oci.source import registry_client

    client = registry_client(dest.registry, access)
    return publish_layout(Layout.open(layout_path), refs, dest, client, immutable_tags=immutable_tags)


def _sign_key(args: argparse.Namespace) -> SigningKey | None:
    """Return the key of ``--sign-key``, read before any work starts (a bad key fails fast)."""
    if not args.sign_key:
        return None
    from ..builder.signer import load_signing_key

    return load_signing_key(args.sign_key)


def _sign_layout_refs(layout_path: Path, refs: list[str], key: SigningKey) -> None:
    from ..builder.signer import sign_artifact
    from ..oci.attach import LayoutStore
    from ..oci.layout import Layout

    layout = Layout.open(layout_path)
    for ref in refs:
        name, _, tag = ref.rpartition(":")
        print(sign_artifact(LayoutStore(layout, name), tag, key).summary())


def _registry_ref(text: str, what: str) -> RegistryRef:
    from ..oci.reference import RegistryRef, parse_ref

    ref = parse_ref(text)
    if not isinstance(ref, RegistryRef):
        raise VenvshipError(f"{text}: not {what}")
    return ref


def _published_line(dest_text: str, result: PublishResult) -> str:
    if not (result.tags_changed or result.blobs_uploaded or result.blobs_mounted or result.referrers):
        return f"{dest_text}: unchanged ({len(result.tags)} tags, {result.blobs_skipped} blobs already there)"
    return (
        f"{dest_text}: published {', '.join(result.tags)}; blobs {result.blobs_uploaded} uploaded "
        f"({human_size(result.bytes_uploaded)}), {result.blobs_mounted} mounted, {result.blobs_skipped} already there"
        f"; {result.referrers} referrers copied"
    )


def _build_options(args: argparse.Namespace, access: Access | None = None, **extra: object) -> BuildOptions:
    from ..builder.recipebuild import BuildOptions
    from ..oci.reference import parse_ref

    return BuildOptions(
        cache=Path(args.cache_dir) if args.cache_dir else None,
        reuse_from=parse_ref(args.reuse_from) if getattr(args, "reuse_from", None) else None,
        pythons=tuple(getattr(args, "python_extra", None) or ()),
        distro_packages=not getattr(args, "no_distro_packages", False),
        reuse_access=access,
        reuse_policy=Path(args.reuse_policy) if getattr(args, "reuse_policy", None) else None,
        rebuild_wheels=args.rebuild_wheels,
        refresh=args.refresh,
        immutable_tags=getattr(args, "immutable_tags", False),
        **extra,  # type: ignore[arg-type]
    )


def cmd_build(args: argparse.Namespace) -> int:
    from ..builder.batch import build_recipes
    from ..oci.reference import parse_ref

    output = parse_ref(args.output)
    access = _access(args, output)
    run = build_recipes(
        [Path(r) for r in args.recipes or ["recipes"]],
        output=output,
        options=_build_options(args, access),
        access=access,
        sign_key=_sign_key(args),
    )
    if args.json:
        print(json_text(run.to_json(), indent=2))
        return 0
    for result in run.results:
        print(result.summary())
    if run.published is not None:
        print(_published_line(args.output, run.published))
    for tag, digest in run.indexes:
        print(f"{tag}: index {digest}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from ..localinstall import install_recipe
    from ..recipe import load_recipe
    from .install_args import install_options, install_report

    recipe = load_recipe(Path(args.recipe))
    done = install_recipe(recipe, install_options(args), build=_build_options(args))
    b = done.build
    if b.status == "built" and not args.json:
        print(b.summary())
    note = f"; {b.ref} would be built first" if b.status == "outdated" else ""
    print(install_report(done.install, as_json=args.json, note=note))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from ..oci.layout import Layout
    from ..oci.reference import LayoutRef, parse_ref
    from ..oci.referrers import is_referrers_tag

    src = parse_ref(args.src)
    key = _sign_key(args)
    if not isinstance(src, LayoutRef):
        return _fetch(args, src, key)
    refs = [src.ref_name] if src.ref_name else sorted(Layout.open(src.path).refs())
    refs = [r for r in refs if r and not is_referrers_tag(r.rpartition(":")[2])]
    if not refs:
        raise VenvshipError(f"{args.src}: nothing to publish (name NAME:TAG)")
    dest = _registry_ref(args.dest, "a registry namespace (HOST[:PORT]/NAMESPACE)")
    if key is not None:  # in the layout first: the signatures go up before the tags
        _sign_layout_refs(src.path, refs, key)
    result = _publish(_access(args, dest), src.path, refs, dest, immutable_tags=args.immutable_tags)
    print(json_text(result.to_json(), indent=2) if args.json else _published_line(args.dest, result))
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
        verified = require_verified(src, src.tag, key, trusted, _access(args, src))
    store: FetchStore
    if isinstance(src, RegistryRef):
        store = RegistryStore(registry_client(src.registry, _access(args, src)), src.repository)
        name = src.repository.rsplit("/", 1)[-1]
    else:
        from ..oci.httplayout import HttpLayoutSource

        store, name = HttpLayoutSource(src, access=_access(args, src)), src.name or ""
    # What was verified is copied (and signed), by its digest: the tag, asked for again, may name
    # something else (a web server or registry chooses what each answer says).
    result = fetch_to_layout(store, src.tag, Layout.create(dest.path), name, digest=verified)
    if key is not None:
        _sign_layout_refs(dest.path, [f"{name}:{src.tag}"], key)
    print(json_text(result.to_json(), indent=2) if args.json else _published_line(args.dest, result))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from ..builder.signer import load_signing_key, sign_artifact
    from ..install.select import reference_of
    from ..oci.attach import open_store
    from ..oci.reference import RegistryRef, parse_ref

    ref = parse_ref(args.ref)
    key = load_signing_key(args.key)
    if isinstance(ref, RegistryRef) and not args.vouch_unverified:
        from ..builder.vouch import require_verified

        require_verified(
            ref, reference_of(ref), key, [Path(p) for p in args.trust_key or ()], _access(args, ref)
        )
    summary = sign_artifact(open_store(ref, _access(args, ref)), reference_of(ref), key).summary()
    print(json_text({"ref": args.ref, "signed": summary}) if args.json else summary)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from ..oci.publish import merge_registry_index
    from ..oci.reference import RegistryRef, parse_ref
    from ..oci.source import registry_client

    ref = parse_ref(args.ref)
    if not isinstance(ref, RegistryRef) or not ref.tag:
        raise VenvshipError(f"{args.ref}: name the registry repository and version, HOST/NS/NAME:VERSION")
    key = _sign_key(args)
    if args.built and key is None:
        raise VenvshipError("--built: only with --sign-key (it names what the signing job may sign)")
    client = registry_client(ref.registry, _access(args, ref))
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


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..inspect import inspect_ref
    from ..oci.reference import parse_ref

    ref = parse_ref(args.ref)
    view = inspect_ref(ref, _access(args, ref))
    if args.json:
        print(json_text(view.to_json(), indent=2))
        return 0
    print(f"{view.ref}  {view.digest}  ({len(view.platforms)} platform(s))")
    _print_attached(view.attached)
    for p in view.platforms:
        total = sum(layer.size for layer in p.manifest.layers)
        print(f"\n{p.key}  {p.digest}  {p.config.name} {p.config.version}  {human_size(total)}")
        _print_attached(p.attached)
        print(f"  install path: {p.config.install_path}  tool: {p.config.install_tool}")
        for w in p.config.lock:
            vcs = p.config.vcs_source(w.filename)
            built = f"  built from {vcs}" if vcs else ""
            print(
                f"  {w.name}=={w.version}  sha256:{w.sha256[:12]}  {human_size(w.size)}  {w.filename}{built}"
            )
        for w in p.config.tools:
            print(f"  (tool) {w.name}=={w.version}  sha256:{w.sha256[:12]}  {human_size(w.size)}")
    return 0


def _print_attached(attached: Attached) -> None:
    """Print who signed a digest (as the signatures claim; venv-pull verifies) and its referrers."""
    from ..sigformat import short_id

    for key in attached.signers:
        print(f"  signed by key {short_id(key)} (as claimed; venv-pull --policy verifies)")
    for kind, count in attached.others:
        print(f"  attached: {kind} ({count})")


def cmd_sbom(args: argparse.Namespace) -> int:
    from ..inspect import read_sbom
    from ..oci.reference import parse_ref

    ref = parse_ref(args.ref)
    sys.stdout.write(read_sbom(ref, _access(args, ref)).decode())
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ..inspect import diff_views, inspect_ref
    from ..oci.reference import parse_ref

    old_ref, new_ref = parse_ref(args.old), parse_ref(args.new)
    access = _access(args, old_ref, new_ref)
    result = diff_views(inspect_ref(old_ref, access), inspect_ref(new_ref, access))
    if args.json:
        print(json_text(result.to_json(), indent=2))
        return 0
    for key in result.only_old:
        print(f"platform removed: {key}")
    for key in result.only_new:
        print(f"platform added: {key}")
    for key, changes in result.changes.items():
        settings = result.settings.get(key, ())
        if not changes and not settings:
            print(f"{key}: no changes")
            continue
        print(f"{key}:")
        for s in settings:
            print(f"  {s.name.replace('_', ' ')}: {_setting_text(s.old)} -> {_setting_text(s.new)}")
        for c in changes:
            if c.kind == "added":
                print(f"  + {c.name} {c.new.version if c.new else ''}")
            elif c.kind == "removed":
                print(f"  - {c.name} {c.old.version if c.old else ''}")
            else:
                old = c.old.version if c.old else ""
                new = c.new.version if c.new else ""
                note = "" if old != new else " (rebuilt: different wheel)"
                print(f"  ~ {c.name} {old} -> {new}{note}")
    return 0


def _setting_text(value: object) -> str:
    if isinstance(value, dict):
        value = [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, list):
        return "; ".join(map(str, value)) if value else "(none)"
    return str(value) or "(none)"


def cmd_list(args: argparse.Namespace) -> int:
    from ..listing import list_refs
    from ..oci.reference import parse_ref

    ref = parse_ref(args.ref)
    found = list_refs(ref, _access(args, ref))
    if args.json:
        print(json_text({"refs": [x.to_json() for x in found]}, indent=2))
    else:
        for x in found:
            print(f"{x.ref}  {x.digest}" if x.digest else x.ref)
    return 0


def _immutable_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--immutable-tags",
        action="store_true",
        help="refuse to move an existing tag to other content (for CI); without it, a move is reported",
    )


def _registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP to the registry or web server")
    p.add_argument("--ca-file", metavar="FILE", help="CA bundle for the registry's TLS certificate")
    p.add_argument("--username", help="registry user (else docker config.json / REGISTRY_AUTH_FILE)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument(
        "--token-realm-host",
        action="append",
        metavar="HOST[:PORT]",
        help="another host whose Bearer token realm may receive the credentials (repeatable)",
    )


def _sign_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--sign-key", metavar="KEY", help=f"{what}: a PEM file or env://NAME, as sign --key")


def parser() -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = CommandParser(
        prog=PROG,
        description="Build Python venvs as verified OCI artifacts.",
        epilog="example:\n  venvship build recipes/demo.toml --output oci:build/oci",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_output_options(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_build_parser, _install_parser, _publish_parser, _index_parser, _sign_parser):
        add(sub)
    for add in (_list_parser, _inspect_parser, _sbom_parser, _diff_parser):
        add(sub)
    add_import_role(sub)
    add_recipe_commands(sub)
    add_cache(sub)
    return p


def _rebuild_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rebuild-wheels", action="store_true", help="ignore every wheel cache (venv_wheels_rebuild)"
    )
    p.add_argument("--refresh", action="store_true", help="resolve again even if no input changed")
    p.add_argument(
        "--cache-dir", metavar="DIR", help="build cache (default $VENVSHIP_CACHE or ~/.cache/venvship)"
    )


def _build_parser(sub: _Sub) -> None:
    b = add_command(
        sub,
        "build",
        help="build recipes into an OCI layout",
        example="venvship build recipes --output oci:build/oci",
    )
    b.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipe files or folders (default: recipes/)")
    b.add_argument(
        "--output",
        default="oci:build/oci",
        metavar="REF",
        help="oci:DIR (default oci:build/oci) or HOST[:PORT]/NAMESPACE",
    )
    b.add_argument(
        "--reuse-from",
        metavar="REF",
        help="reuse wheels of a previous artifact (oci:DIR:NAME:TAG): index wheels whose sha256 is the "
        "index's; wheels built from sources only if its signature satisfies --reuse-policy",
    )
    b.add_argument(
        "--reuse-policy",
        metavar="FILE",
        help="trust policy (venv-pull's format) the --reuse-from artifact's signature must satisfy "
        "for its wheels built from sdists or VCS sources to be reused",
    )
    b.add_argument(
        "--python",
        dest="python_extra",
        action="append",
        metavar="PYTHON",
        help="also build for this interpreter (repeatable): one manifest per interpreter, all in one index",
    )
    b.add_argument(
        "--no-distro-packages",
        action="store_true",
        help="leave the build distro packages to someone else (they must be installed already)",
    )
    _rebuild_options(b)
    _immutable_option(b)
    _registry_options(b)
    _sign_option(b, "sign each built manifest and index with this key")
    add_output_options(b)
    b.set_defaults(func=cmd_build)


def _install_parser(sub: _Sub) -> None:
    inst = add_command(
        sub,
        "install",
        help="build RECIPE on this host into the blob cache and install it (no build host)",
        description="Build RECIPE for this host into the blob cache (an OCI layout) and install it "
        "from there exactly as `venv-pull install oci:CACHE:NAME:TAG` does. Unchanged inputs and "
        "an intact venv: nothing is built or written.",
        example="venvship install recipes/demo.toml --dest /opt/venvs/demo-1.0 --json",
    )
    inst.add_argument("recipe", metavar="RECIPE", help="recipe file")
    add_install_options(
        inst,
        check_help="report what would change; build and write nothing (if the recipe's inputs "
        "changed since the last build: changed, with the digest left empty until built)",
    )
    _rebuild_options(inst)
    add_output_options(inst)
    inst.set_defaults(func=cmd_install)


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
    _immutable_option(pub)
    _registry_options(pub)
    _sign_option(pub, "sign what is published with this key (in a layout source first)")
    _vouch_options(pub, "with --sign-key and a registry SRC")
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
    _registry_options(ix)
    _sign_option(
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
    _immutable_option(ix)
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
    _vouch_options(sg, "signing a registry's content")
    _registry_options(sg)
    add_output_options(sg)
    sg.set_defaults(func=cmd_sign)


def _vouch_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--trust-key",
        action="append",
        metavar="PUB",
        help=f"{what}: also accept content signed by this public key (repeatable; e.g. the old key of a rollover)",
    )
    p.add_argument(
        "--vouch-unverified",
        action="store_true",
        help=f"{what}: sign it even though no trusted key signed it; you vouch for what the registry serves",
    )


def _list_parser(sub: _Sub) -> None:
    ls = add_command(
        sub,
        "list",
        help="list the refs of a layout or the tags of a registry repository",
        example="venvship list oci:build/oci",
    )
    ls.add_argument(
        "ref", metavar="REF", help="oci:DIR, oci:DIR:NAME, oci+https://HOST/PATH[:NAME] or HOST[:PORT]/REPO"
    )
    _registry_options(ls)
    add_output_options(ls)
    ls.set_defaults(func=cmd_list)


def _inspect_parser(sub: _Sub) -> None:
    i = add_command(
        sub,
        "inspect",
        help="show an artifact's platforms and packages",
        example="venvship inspect oci:build/oci:demo:1.0",
    )
    i.add_argument("ref", metavar="REF", help="a layout or registry reference with a tag or digest")
    _registry_options(i)
    add_output_options(i)
    i.set_defaults(func=cmd_inspect)


def _sbom_parser(sub: _Sub) -> None:
    sb = add_command(
        sub,
        "sbom",
        help="print the CycloneDX SBOM of one platform's manifest",
        example="venvship sbom oci:build/oci:demo:1.0-debian-12-amd64-cp311",
    )
    sb.add_argument(
        "ref", metavar="REF", help="a per-platform tag (VERSION-PLATFORM), or an index of one platform"
    )
    _registry_options(sb)
    add_output_options(sb)
    sb.set_defaults(func=cmd_sbom)


def _diff_parser(sub: _Sub) -> None:
    d = add_command(
        sub,
        "diff",
        help="what changed between two artifacts: platforms, settings and packages",
        example="venvship diff oci:build/oci:demo:1.0 oci:build/oci:demo:1.1",
    )
    d.add_argument("old", metavar="REF", help="the old artifact")
    d.add_argument("new", metavar="REF", help="the new artifact")
    _registry_options(d)
    add_output_options(d)
    d.set_defaults(func=cmd_diff)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``venvship`` command line; return the exit code (0 ok, 1 error, 2 usage)."""

    def call(args: argparse.Namespace) -> int:
        # Before any secret is read and any child runs: see _process.hide_process.
        hide_process()
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)

    return run_cli(PROG, parser(), argv, call)


if __name__ == "__main__":
    sys.exit(main())
