"""``venvship inspect``, ``sbom``, ``diff``, ``list`` and ``export``: reading artifacts back (catalog/)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .._units import human_size
from .outcome import add_command, add_output_options, json_text, shown
from .venvship_args import add_registry_options, registry_access

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..catalog.contents import Attached

    _Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..catalog.contents import inspect_ref
    from ..oci.reference import parse_ref

    ref = parse_ref(args.ref)
    view = inspect_ref(ref, registry_access(args, ref))
    if args.json:
        print(json_text(view.to_json(), indent=2))
        return 0
    _say(f"{view.ref}  {view.digest}  ({len(view.platforms)} platform(s))")
    _print_attached(view.attached)
    for p in view.platforms:
        total = sum(layer.size for layer in p.manifest.layers)
        print()
        _say(f"{p.key}  {p.digest}  {p.config.name} {p.config.version}  {human_size(total)}")
        _print_attached(p.attached)
        _say(f"  install path: {p.config.install_path}  tool: {p.config.install_tool}")
        for w in p.config.lock:
            vcs, url = p.config.vcs_source(w.filename), p.config.download_urls.get(w.filename)
            built = f"  built from {vcs}" if vcs else f"  from {url}" if url else ""
            _say(
                f"  {w.name}=={w.version}  sha256:{w.sha256[:12]}  {human_size(w.size)}  {w.filename}{built}"
            )
        for w in p.config.tools:
            _say(f"  (tool) {w.name}=={w.version}  sha256:{w.sha256[:12]}  {human_size(w.size)}")
    return 0


def _say(line: str) -> None:
    """Print a line that holds what an artifact or registry says (so: escaped, see ``shown``)."""
    print(shown(line))


def _print_attached(attached: Attached) -> None:
    """Print who signed a digest (as the signatures claim; venv-pull verifies) and its referrers."""
    from ..artifact.sigformat import short_id

    for key, form in attached.signatures:
        # short_id: the hint is the signature's own text, cut to a key id's length whatever it holds.
        _say(f"  signed by key {short_id(key)} ({form} signature, as claimed; venv-pull --policy verifies)")
    for kind, count in attached.others:
        _say(f"  attached: {kind} ({count})")


def cmd_sbom(args: argparse.Namespace) -> int:
    from ..catalog.contents import read_sbom
    from ..oci.reference import parse_ref

    ref = parse_ref(args.ref)
    sys.stdout.write(read_sbom(ref, registry_access(args, ref)).decode())
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ..catalog.contents import diff_views, inspect_ref
    from ..oci.reference import parse_ref

    old_ref, new_ref = parse_ref(args.old), parse_ref(args.new)
    access = registry_access(args, old_ref, new_ref)
    result = diff_views(inspect_ref(old_ref, access), inspect_ref(new_ref, access))
    if args.json:
        print(json_text(result.to_json(), indent=2))
        return 0
    for key in result.only_old:
        _say(f"platform removed: {key}")
    for key in result.only_new:
        _say(f"platform added: {key}")
    for key, changes in result.changes.items():
        settings = result.settings.get(key, ())
        if not changes and not settings:
            _say(f"{key}: no changes")
            continue
        _say(f"{key}:")
        for s in settings:
            _say(f"  {s.name.replace('_', ' ')}: {_setting_text(s.old)} -> {_setting_text(s.new)}")
        for c in changes:
            if c.kind == "added":
                _say(f"  + {c.name} {c.new.version if c.new else ''}")
            elif c.kind == "removed":
                _say(f"  - {c.name} {c.old.version if c.old else ''}")
            else:
                old = c.old.version if c.old else ""
                new = c.new.version if c.new else ""
                note = "" if old != new else " (rebuilt: different wheel)"
                _say(f"  ~ {c.name} {old} -> {new}{note}")
    return 0


def _setting_text(value: object) -> str:
    if isinstance(value, dict):
        value = [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, list):
        return "; ".join(map(str, value)) if value else "(none)"
    return str(value) or "(none)"


def cmd_list(args: argparse.Namespace) -> int:
    from ..catalog.listing import list_refs
    from ..oci.reference import parse_ref

    ref = parse_ref(args.ref)
    found = list_refs(ref, registry_access(args, ref))
    if args.json:
        print(json_text({"refs": [x.to_json() for x in found]}, indent=2))
    else:
        for x in found:
            _say(f"{x.ref}  {x.digest}" if x.digest else x.ref)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..catalog.export import export_lock
    from ..oci.reference import parse_ref

    ref = parse_ref(args.ref)
    done = export_lock(
        ref, output=Path(args.output), platform=args.platform, access=registry_access(args, ref)
    )
    print(json_text(done.to_json()) if args.json else done.summary())
    return 0


def _export_parser(sub: _Sub) -> None:
    e = add_command(
        sub,
        "export",
        help="write one platform's lock as a PEP 751 pylock.toml with its wheels beside it",
        example="venvship export oci:build/oci:demo:1.0 --platform debian-12-amd64-cp311 --output demo-lock",
    )
    e.add_argument("ref", metavar="REF", help="a layout or registry reference with a tag or digest")
    e.add_argument(
        "--platform",
        metavar="KEY",
        help="the platform key (debian-12-amd64-cp311); needed when REF has several",
    )
    e.add_argument(
        "--output", metavar="DIR", required=True, help="a new folder: gets pylock.toml and wheels/"
    )
    add_registry_options(e)
    add_output_options(e)
    e.set_defaults(func=cmd_export)


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
    add_registry_options(ls)
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
    add_registry_options(i)
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
    add_registry_options(sb)
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
    add_registry_options(d)
    add_output_options(d)
    d.set_defaults(func=cmd_diff)


def add_parsers(sub: _Sub) -> None:
    """Add ``list``, ``inspect``, ``sbom``, ``diff`` and ``export`` to ``sub``."""
    for add in (_list_parser, _inspect_parser, _sbom_parser, _diff_parser, _export_parser):
        add(sub)
