"""The install options ``venv-pull install`` and ``venvship install`` share: parser, options, report.

Stdlib only: it travels in the ``venv-pull`` zipapp.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..install.installer import DEFAULT_CACHE, DEFAULT_FACTS, InstallOptions, InstallResult
from ..install.registries import DEFAULT_FILES as REGISTRIES_FILES
from ..install.registries import MirrorOptions, location_problem
from ..oci.mirrors import Mirror
from .outcome import json_text

CHECK_HELP = "report what would change; write nothing"


def absolute_path(text: str) -> Path:
    """An argparse type: a path made absolute now, so links made from it and generations found
    by it do not depend on the directory a later command runs in."""
    return Path(text).absolute()


def generations_arg(text: str) -> int:
    """Parse ``--keep N``: a whole number of generations, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_common_options(p: argparse.ArgumentParser, *, facts: bool = False, lock: bool = True) -> None:
    """Add the options every venv-pull command shares (cache; facts and lock where they apply)."""
    p.add_argument(
        "--cache", type=absolute_path, default=DEFAULT_CACHE, help="blob cache (default: %(default)s)"
    )
    if facts:
        p.add_argument(
            "--facts-dir",
            type=absolute_path,
            default=DEFAULT_FACTS,
            help="where the Ansible fact files go (default: %(default)s)",
        )
    if lock:
        p.add_argument(
            "--lock-timeout",
            type=float,
            default=_default_lock_timeout(),
            metavar="SECONDS",
            help="give up if another run holds the lock this long "
            "(default: $VENVSHIP_LOCK_TIMEOUT, else %(default)g)",
        )


DEFAULT_LOCK_TIMEOUT = 600.0  # a run stuck behind a lock this long is reported, not waited on for ever


def _default_lock_timeout() -> float:
    """Return the lock wait limit: $VENVSHIP_LOCK_TIMEOUT if it is a number of seconds, else 10 minutes."""
    try:
        value = float(os.environ.get("VENVSHIP_LOCK_TIMEOUT", ""))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT
    return value if value >= 0 else DEFAULT_LOCK_TIMEOUT


def add_install_options(p: argparse.ArgumentParser, *, check_help: str = CHECK_HELP) -> None:
    """Add the options of an install (destination, cache, facts, generations, checks) to ``p``."""
    p.add_argument("--dest", type=absolute_path, help="venv path (default: the recipe's install path)")
    add_common_options(p, facts=True, lock=True)
    p.add_argument(
        "--keep", type=generations_arg, default=2, metavar="N", help="generations to keep (default: 2)"
    )
    p.add_argument("--rebuild", action="store_true", help="make a new generation even if unchanged")
    p.add_argument(
        "--adopt",
        action="store_true",
        help="keep a venv venv-pull did not make at the destination as a generation to roll back to",
    )
    p.add_argument("--no-compile", action="store_true", help="do not compile bytecode")
    p.add_argument("--check", action="store_true", help=check_help)
    p.add_argument("--check-command", help="health check to run instead of importing the packages")
    p.add_argument(
        "--check-user",
        default="nobody",
        metavar="USER",
        help="when root, who runs the health check (the artifact's code); 'root' keeps root (default: nobody)",
    )
    p.add_argument(
        "--no-distro-packages",
        action="store_true",
        help="skip the distro packages (managed elsewhere)",
    )
    p.add_argument(
        "--from-wheels",
        action="store_true",
        help="install the wheels with the artifact's pip or uv instead of unpacking its ready-to-run layers",
    )
    p.add_argument(
        "--python",
        metavar="PYTHON",
        help="the host interpreter that makes the venv, instead of the artifact's (a name on the system PATH or an absolute path)",
    )
    p.add_argument(
        "--allow-tool",
        action="append",
        default=[],
        metavar="sha256:HEX",
        type=_tool_digest,
        help="with --from-wheels: also run a pip or uv wheel with this digest (venv-pull's own pins always run)",
    )
    p.add_argument(
        "--policy",
        type=absolute_path,
        metavar="FILE",
        help="trust policy: which keys must have signed what (default: /etc/venvship/policy.toml or policy.json, if there)",
    )


def add_mirror_options(p: argparse.ArgumentParser) -> None:
    """Add the options that name mirrors of the reference's registry (venv-pull install)."""
    p.add_argument(
        "--mirror",
        action="append",
        default=[],
        type=mirror_arg,
        metavar="HOST[:PORT][/PATH]",
        help="a mirror of REF's registry, tried before it (repeat for more, in order; http://HOST… for "
        "plain HTTP): manifests and blobs by digest from the first that has them, REF's registry last",
    )
    p.add_argument(
        "--mirror-tags",
        action="store_true",
        help="let mirrors resolve tags too (a stale mirror may then serve an older tag); "
        "default: tags at REF's registry, mirrors by digest only",
    )
    p.add_argument(
        "--registries-conf",
        type=absolute_path,
        metavar="FILE",
        help=f"mirrors per registry or repository prefix (default: {REGISTRIES_FILES[0]} or "
        f"{REGISTRIES_FILES[1].name}, if there)",
    )


def mirror_arg(text: str) -> Mirror:
    """Parse ``--mirror [http://]HOST[:PORT][/PATH]``: the scheme says plain HTTP, never a guess."""
    scheme, sep, rest = text.partition("://")
    if sep and scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"{text!r}: only http:// (plain HTTP) or https:// go before HOST")
    location = rest.rstrip("/") if sep else text.rstrip("/")
    problem = location_problem(location)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return Mirror(location=location, insecure=scheme == "http" and bool(sep))


def mirror_options(args: argparse.Namespace) -> MirrorOptions:
    """Return the :class:`MirrorOptions` of parsed ``args`` (see :func:`add_mirror_options`)."""
    return MirrorOptions(file=args.registries_conf, extra=tuple(args.mirror), tags=args.mirror_tags)


def _tool_digest(text: str) -> str:
    hexpart = text.split(":", 1)[1] if text.startswith("sha256:") else text
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise argparse.ArgumentTypeError(f"not a sha256 digest: {text!r}")
    return hexpart


def install_options(args: argparse.Namespace, **extra: Any) -> InstallOptions:
    """Return the :class:`InstallOptions` of parsed ``args`` (``extra``: more fields)."""
    return InstallOptions(
        dest=args.dest,
        cache=args.cache,
        facts_dir=args.facts_dir,
        keep=args.keep,
        rebuild=args.rebuild,
        compile=not args.no_compile,
        check=args.check,
        lock_timeout=args.lock_timeout,
        adopt=args.adopt,
        check_command=args.check_command,
        check_user=None if args.check_user == "root" else args.check_user,
        distro_packages=not args.no_distro_packages,
        from_wheels=args.from_wheels,
        python=args.python,
        allowed_tools=tuple(args.allow_tool),
        policy=args.policy,
        **extra,
    )


def install_report(result: InstallResult, *, as_json: bool, note: str = "", blobs: bool = False) -> str:
    """Return what to print for ``result``: one JSON object (``blobs``: with each pulled blob), or
    one line (with ``note`` appended)."""
    if as_json:
        return json_text(result.to_json(blobs=blobs))
    verb = ("would change" if result.check else "changed") if result.changed else "unchanged"
    what = f"{result.digest}, {result.packages} packages" if result.digest else "digest known once built"
    return f"{result.dest}: {verb} ({what}){note}"
