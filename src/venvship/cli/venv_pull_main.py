"""``venv-pull``: install venvs from OCI artifacts on a target host (stdlib only)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Sequence

from .. import __version__
from ..errors import VenvshipError
from ..install.installer import InstallResult, install
from .install_args import (
    absolute_path,
    add_common_options,
    add_install_options,
    add_mirror_options,
    generations_arg,
    install_options,
    install_report,
    mirror_options,
)
from .outcome import CommandParser, add_command, add_output_options, json_text, run_cli

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..install.maintenance import Drift
    from ..oci.auth import Credentials

    _Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = CommandParser(
        prog="venv-pull",
        description=__doc__,
        epilog="example:\n  venv-pull install registry.example.com/venvs/demo:1.0 --json",
    )
    parser.add_argument("--version", action="version", version=f"venv-pull {__version__}")
    add_output_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _install_parser(sub)
    _status_parser(sub)
    _generation_parsers(sub)
    return parser


def _install_parser(sub: _Sub) -> None:
    p = add_command(
        sub,
        "install",
        help="install or update a venv from REF",
        description="Install or update the venv of the artifact REF: pull, stage a new generation, "
        "check it, switch to it in one rename.",
        example="venv-pull install oci:/media/usb/oci:demo:1.0 --dest /opt/venvs/demo-1.0 --json",
    )
    p.add_argument("ref", metavar="REF", help="oci:DIR:NAME:TAG or HOST[:PORT]/REPO[:TAG|@DIGEST]")
    add_install_options(p)
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP to the registry")
    p.add_argument("--ca-file", help="CA bundle for the registry's TLS certificate")
    p.add_argument("--username", help="registry user (else docker config.json / REGISTRY_AUTH_FILE)")
    p.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    add_mirror_options(p)
    add_output_options(p)


def _status_parser(sub: _Sub) -> None:
    p = add_command(
        sub,
        "status",
        help="show the generations and drift of DEST (or of every known venv)",
        description="Show each destination's generations and its drift: whether its symlink points at"
        " a complete generation, and how many installed files differ from their RECORD. Files are"
        " compared by size (one stat each, fast on a fleet); --hashes reads and hashes every file, as"
        " verify does, which costs seconds on a large venv.",
        example="venv-pull status /opt/venvs/demo-1.0 --json",
    )
    p.add_argument(
        "dest", nargs="?", type=absolute_path, metavar="DEST", help="a venv path (default: every known venv)"
    )
    p.add_argument("--hashes", action="store_true", help="compare file hashes too, not only sizes (slower)")
    p.add_argument(
        "--packages",
        action="store_true",
        help="list the distributions DEST's live venv holds, as pip freeze does (needs DEST)",
    )
    add_common_options(p, lock=False)
    add_output_options(p)


def _generation_parsers(sub: _Sub) -> None:
    """rollback, verify and prune: what acts on a destination's generations."""
    p = add_command(
        sub,
        "rollback",
        help="switch DEST back to its previous generation",
        description="Switch DEST back to its previous generation in one rename and write its facts again.",
        example="venv-pull rollback /opt/venvs/demo-1.0",
    )
    p.add_argument("dest", type=absolute_path, metavar="DEST", help="a venv installed by venv-pull")
    add_common_options(p, facts=True)
    add_output_options(p)

    p = add_command(
        sub,
        "verify",
        help="check DEST's installed files against their RECORD hashes",
        description="Hash every file the live generation's packages installed and compare it with "
        "RECORD; exit 1 if any drifted.",
        example="venv-pull verify /opt/venvs/demo-1.0",
    )
    p.add_argument("dest", type=absolute_path, metavar="DEST", help="a venv installed by venv-pull")
    add_common_options(p, lock=False)
    add_output_options(p)

    p = add_command(
        sub,
        "prune",
        help="remove old generations and unreferenced cache blobs",
        description="Keep N generations of every venv the cache knows (the live one, the one it "
        "names as previous, then the newest) and remove the cache blobs none of them needs.",
        example="venv-pull prune --keep 1",
    )
    add_common_options(p)
    p.add_argument(
        "--keep", type=generations_arg, default=2, metavar="N", help="generations to keep (default: 2)"
    )
    add_output_options(p)


def _emit(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    print(json_text(data) if args.json else text)


def _credentials(args: argparse.Namespace) -> Credentials | None:
    """Return the registry login of ``--username`` and ``--password-stdin`` (never echoed or logged)."""
    if not args.username and not args.password_stdin:
        return None
    if not (args.username and args.password_stdin):
        raise SystemExit("venv-pull: error: --username and --password-stdin go together")
    from ..oci.auth import Credentials  # imported on use: keeps the no-op install fast

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SystemExit("venv-pull: error: --password-stdin: no password on standard input")
    return Credentials(username=args.username, password=password)


def _install(args: argparse.Namespace) -> int:
    from ..oci.reference import parse_ref
    from ..oci.source import Access

    access = Access(insecure=args.insecure, ca_file=args.ca_file, credentials=_credentials(args))
    options = install_options(args, access=access, mirrors=mirror_options(args))
    result: InstallResult = install(parse_ref(args.ref), options)
    print(install_report(result, as_json=args.json, blobs=args.verbose > 0))
    return 0


def _status(args: argparse.Namespace) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

    if args.packages:
        return _packages(args)
    items = maintenance.status(args.dest, cache=args.cache, hashes=args.hashes)
    data = [
        {
            "dest": s.dest,
            "current": s.current,
            "generations": [
                {"generation": g.generation, "digest": g.digest, "version": g.version, "created": g.created}
                for g in s.generations
            ],
            "drift": s.drift.to_json(),
            "rollback_to": s.rollback_to,
        }
        for s in items
    ]
    lines = []
    for s in items:
        lines.append(f"{s.dest}: {_drift_text(s.drift)}")
        for g in s.generations:
            mark = "*" if g.generation == s.current else "<" if g.generation == s.rollback_to else " "
            lines.append(f" {mark} {g.generation}  {g.name} {g.version}  {g.digest or '(adopted)'}")
    if args.json:
        print(json_text({"venvs": data, "cache": str(args.cache)} if args.dest is None else data[0]))
    else:
        print("\n".join(lines) or f"no venvs installed (none recorded in the cache {args.cache})")
    return 0


def _packages(args: argparse.Namespace) -> int:
    from ..install.packages import live_packages

    if args.dest is None:
        raise VenvshipError("status --packages: name the venv, venv-pull status DEST --packages")
    generation, packages = live_packages(args.dest)
    data: dict[str, object] = {
        "dest": str(args.dest),
        "generation": generation,
        "packages": [{"name": p.name, "version": p.version} for p in packages],
    }
    _emit(args, data, "\n".join(p.freeze() for p in packages))
    return 0


def _drift_text(drift: Drift) -> str:
    if drift.link != "ok":
        return f"drift: link {drift.link}"
    how = "by hash" if drift.hashed else "by size"
    if not drift.drifted:
        return f"no drift (files compared {how})"
    files = f"{len(drift.drifted)} of {drift.checked} files"
    return f"drift: {files} differ from RECORD ({how}; verify lists them)"


def _rollback(args: argparse.Namespace) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

    r = maintenance.rollback(args.dest, facts_dir=args.facts_dir, lock_timeout=args.lock_timeout)
    data = {
        "changed": True,
        "dest": r.dest,
        "generation": r.generation,
        "previous": r.previous,
        "digest": r.digest,
        "facts_written": r.facts_written,
        "forward": r.forward,
    }
    how = "rolled forward (undoing the last rollback)" if r.forward else "rolled back"
    _emit(args, data, f"{r.dest}: {how} from {r.previous} to {r.generation}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

    r = maintenance.verify(args.dest, cache=args.cache)
    data = {"dest": r.dest, "generation": r.generation, "checked": r.checked, "drifted": list(r.drifted)}
    text = f"{r.dest}: {r.checked} files checked, {len(r.drifted)} drifted"
    _emit(args, data, "\n".join([text, *r.drifted]))
    return 1 if r.drifted else 0


def _prune(args: argparse.Namespace) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

    r = maintenance.prune(cache=args.cache, keep=args.keep, lock_timeout=args.lock_timeout)
    data = {"cache": str(args.cache), "generations": list(r.generations), "blobs": len(r.blobs)}
    _emit(args, data, f"{args.cache}: pruned {len(r.generations)} generations, {len(r.blobs)} cache blobs")
    return 0


COMMANDS = {"install": _install, "status": _status, "rollback": _rollback, "verify": _verify, "prune": _prune}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``venv-pull`` with ``argv``; return the exit code (0 done, 1 error, 2 usage)."""
    return run_cli(
        "venv-pull",
        _parser(),
        argv,
        lambda args: COMMANDS[args.command](args),
        not_root="venv-pull's default folders are root's: run it as root, or name folders you own "
        "with the command's folder options (--cache, --dest, --facts-dir: see --help)",
    )


if __name__ == "__main__":
    sys.exit(main())
