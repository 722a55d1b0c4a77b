"""``venv-pull``: install venvs from OCI artifacts on a target host (stdlib only)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Sequence

from .. import __version__
from ..install.installer import InstallResult, install
from .install_args import (
    absolute_path,
    add_common_options,
    add_install_options,
    generations_arg,
    install_options,
    install_report,
)
from .outcome import run_command

if TYPE_CHECKING:
    from ..install.maintenance import Drift
    from ..oci.auth import Credentials


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="venv-pull", description=__doc__)
    parser.add_argument("--version", action="version", version=f"venv-pull {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show commands and their output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("install", help="install or update a venv from REF")
    p.add_argument("ref", metavar="REF", help="oci:DIR:NAME:TAG or HOST[:PORT]/REPO[:TAG|@DIGEST]")
    add_install_options(p)
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP to the registry")
    p.add_argument("--ca-file", help="CA bundle for the registry's TLS certificate")
    p.add_argument("--username", help="registry user (else docker config.json / REGISTRY_AUTH_FILE)")
    p.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")

    p = sub.add_parser(
        "status",
        help="show the generations and drift of DEST (or of every known venv)",
        description="Show each destination's generations and its drift: whether its symlink points at"
        " a complete generation, and how many installed files differ from their RECORD. Files are"
        " compared by size (one stat each, fast on a fleet); --hashes reads and hashes every file, as"
        " verify does, which costs seconds on a large venv.",
    )
    p.add_argument("dest", nargs="?", type=absolute_path, metavar="DEST")
    p.add_argument("--hashes", action="store_true", help="compare file hashes too, not only sizes (slower)")
    add_common_options(p, lock=False)

    p = sub.add_parser("rollback", help="switch DEST back to its previous generation")
    p.add_argument("dest", type=absolute_path, metavar="DEST")
    add_common_options(p, facts=True)

    p = sub.add_parser("verify", help="check DEST's installed files against their RECORD hashes")
    p.add_argument("dest", type=absolute_path, metavar="DEST")
    add_common_options(p, lock=False)

    p = sub.add_parser("prune", help="remove old generations and unreferenced cache blobs")
    add_common_options(p)
    p.add_argument(
        "--keep", type=generations_arg, default=2, metavar="N", help="generations to keep (default: 2)"
    )
    return parser


def _emit(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    print(json.dumps(data, sort_keys=True) if args.json else text)


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
    result: InstallResult = install(parse_ref(args.ref), install_options(args, access=access))
    print(install_report(result, as_json=args.json))
    return 0


def _status(args: argparse.Namespace) -> int:
    from ..install import maintenance  # imported on use: keeps the no-op install fast

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
        }
        for s in items
    ]
    lines = []
    for s in items:
        lines.append(f"{s.dest}: {_drift_text(s.drift)}")
        for g in s.generations:
            mark = "*" if g.generation == s.current else " "
            lines.append(f" {mark} {g.generation}  {g.name} {g.version}  {g.digest or '(adopted)'}")
    if args.json:
        print(json.dumps(data if args.dest is None else data[0], sort_keys=True))
    else:
        print("\n".join(lines) or "no venvs installed")
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
    }
    _emit(args, data, f"{r.dest}: rolled back from {r.previous} to {r.generation}")
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
    data = {"generations": list(r.generations), "blobs": len(r.blobs)}
    _emit(args, data, f"pruned {len(r.generations)} generations, {len(r.blobs)} cache blobs")
    return 0


COMMANDS = {"install": _install, "status": _status, "rollback": _rollback, "verify": _verify, "prune": _prune}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``venv-pull`` with ``argv``; return the exit code (0 done, 1 error, 2 usage)."""
    # As root on every host: what venv-pull makes is never group- or world-writable, whatever
    # umask the caller (cron, an Ansible task) left.
    os.umask(0o022)
    parser = _parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO
    return run_command("venv-pull", level, lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
