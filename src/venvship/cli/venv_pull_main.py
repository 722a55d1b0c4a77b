"""``venv-pull``: install venvs from OCI artifacts on a target host (stdlib only)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .. import __version__
from ..errors import VenvshipError
from ..install import runlog
from ..install.installer import InstallResult, install
from .generations_cmd import LogFields, prune, rollback, status, verify
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
from .outcome import CommandParser, add_command, add_output_options, os_error_text, run_cli

if TYPE_CHECKING:
    from typing import TypeAlias

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
    p.add_argument(
        "ref",
        metavar="REF",
        help="oci:DIR:NAME:TAG, oci+https://HOST/PATH:NAME:TAG (a layout on a web server) "
        "or HOST[:PORT]/REPO[:TAG|@DIGEST]",
    )
    add_install_options(p)
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP to the registry or web server")
    p.add_argument("--ca-file", help="CA bundle for the registry's TLS certificate")
    p.add_argument("--username", help="registry user (else docker config.json / REGISTRY_AUTH_FILE)")
    p.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    add_mirror_options(p)
    _log_options(p)
    add_output_options(p)


def _log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log",
        type=absolute_path,
        metavar="FILE",
        help="append one JSON line about this run here (default: $VENVSHIP_LOG, else "
        f"{runlog.ROOT_LOG} as root, else ~/.local/state/venvship/venv-pull.log)",
    )
    p.add_argument("--no-log", action="store_true", help="do not log this run")


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
    _log_options(p)
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
        "names as previous, then the newest) and remove the cache blobs none of them needs. With "
        "--keep-releases, first remove the oldest release folders of each family (venvs of one "
        "recipe name, such as keystone-30.0.0 and keystone-31.0.0) beyond the newest N.",
        example="venv-pull prune --keep 1 --keep-releases 2",
    )
    add_common_options(p)
    p.add_argument(
        "--keep", type=generations_arg, default=2, metavar="N", help="generations to keep (default: 2)"
    )
    p.add_argument(
        "--keep-releases",
        type=generations_arg,
        metavar="N",
        help="also remove each release family's release folders beyond the N last installed,"
        " unless a symlink beside one or a running process still uses it",
    )
    _log_options(p)
    add_output_options(p)


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


def _install(args: argparse.Namespace, log: LogFields) -> int:
    from ..oci.reference import parse_ref
    from ..oci.source import Access

    log.update(ref=args.ref, dest=str(args.dest or ""), cache=str(args.cache))
    access = Access(insecure=args.insecure, ca_file=args.ca_file, credentials=_credentials(args))
    options = install_options(args, access=access, mirrors=mirror_options(args))
    result: InstallResult = install(parse_ref(args.ref), options)
    changed = ("would change" if result.check else "changed") if result.changed else "unchanged"
    log.update(
        dest=result.dest, digest=result.digest, previous_digest=result.previous_digest, outcome=changed
    )
    print(install_report(result, as_json=args.json, blobs=args.verbose > 0))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"status": status, "verify": verify}
# The commands that change a host: each run is logged (runlog), however it ends.
LOGGED: dict[str, Callable[[argparse.Namespace, LogFields], int]] = {
    "install": _install,
    "rollback": rollback,
    "prune": prune,
}


def _dispatch(args: argparse.Namespace) -> int:
    if args.command not in LOGGED:
        return COMMANDS[args.command](args)
    log: LogFields = {}
    started, clock = time.time(), time.monotonic()
    error = "ended without a result"  # what the log says unless the command reports its outcome
    try:
        code = LOGGED[args.command](args, log)
        error = ""
        return code
    except VenvshipError as exc:
        error = str(exc)
        raise
    except OSError as exc:
        error = os_error_text(exc)
        raise
    except KeyboardInterrupt:
        error = "interrupted"
        raise
    except SystemExit as exc:  # a usage error found after parsing
        error = str(exc.code)
        raise
    finally:
        _log_run(args, log, started=started, duration=time.monotonic() - clock, error=error)


def _log_run(
    args: argparse.Namespace, log: LogFields, *, started: float, duration: float, error: str
) -> None:
    """Append the run's line to the log (a log that cannot be written is one warning)."""
    path = None if args.no_log else args.log or runlog.default_log_file()
    if path is None:
        return
    details = log.pop("details", None)
    outcome = str(log.pop("outcome", "error"))
    entry = runlog.Entry(
        command=args.command,
        started=started,
        duration=duration,
        outcome="error" if error else outcome,
        error=error,
        details=details if isinstance(details, dict) else None,
        dest=str(log.get("dest", "")),
        ref=str(log.get("ref", "")),
        digest=str(log.get("digest", "")),
        previous_digest=str(log.get("previous_digest", "")),
        cache=str(log.get("cache", "")),
    )
    runlog.append(Path(path), entry)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``venv-pull`` with ``argv``; return the exit code (0 done, 1 error, 2 usage)."""
    return run_cli(
        "venv-pull",
        _parser(),
        argv,
        _dispatch,
        not_root="venv-pull's default folders are root's: run it as root, or name folders you own "
        "with the command's folder options (--cache, --dest, --facts-dir: see --help)",
    )


if __name__ == "__main__":
    sys.exit(main())
