"""What an install needs from this host, checked before anything is pulled or made: the
interpreter, the user of the health check, the install tool (with ``--from-wheels``), the runtime
distro packages (when they cannot be installed here), the distro packages to symlink, the facts
folder, and free space for the cache and the destination. Every problem found is one line saying
how to fix it, all of them at once.

Free space is an estimate: the blobs still to pull, plus their unpacked files at 3 times the size of
the compressed layers (or wheels), on the file system each lands on.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from .._fsutil import free_bytes
from .._process import ISOLATED_CWD, allowed_env, python_argv, run
from .._units import human_size
from ..artifact.documents import Descriptor, VenvConfig
from ..errors import InstallError, PreconditionError, ProcessError, VenvshipError
from ..host import trust
from ..host.distro import plan
from ..oci.layout import Layout
from ..venvformat.symlinks import distro_python_minor, package_files, top_level_entries
from ..verify.tools import tool_wheel
from . import store
from .health import check_identity

T = TypeVar("T")
UNPACKED = 3  # the files of a layer or wheel take about this many times its compressed size


@dataclass(frozen=True)
class Preflight:
    """What the checks read: the artifact, where it goes, and how the install was asked for."""

    config: VenvConfig
    cache: Layout
    dest: Path
    facts_dir: Path
    python: str  # the interpreter asked for: the artifact's, or --python
    managed: tuple[Path, ...]  # folders venvship manages: no interpreter may come from them
    needed: tuple[Descriptor, ...]  # the blobs the install pulls (if missing) and unpacks
    from_wheels: bool = False
    distro_packages: bool = True
    check_user: str | None = "nobody"
    allowed_tools: tuple[str, ...] = ()  # tool wheel sha256s allowed beyond venv-pull's own pins


def check_preconditions(job: Preflight) -> str:
    """Return the host interpreter to make the venv with, or raise PreconditionError listing every
    precondition this host fails, each with how to fix it. Writes nothing.

    Example: ``python = check_preconditions(Preflight(config=c, cache=cache, dest=d, ...))``
    """
    problems: list[str] = []
    python = _attempt(
        problems,
        lambda: trust.host_python(job.python, managed=job.managed),
        "; install it, or name the interpreter to use with --python",
    )
    identity = _attempt(
        problems, lambda: check_identity(job.check_user), "; create that user, or pass --check-user root"
    )
    if python is not None and identity is not None:
        _attempt(problems, functools.partial(_runs_as, python, identity, job.check_user or ""))
    if job.from_wheels:  # the tool it would run: refused here, not after the pull
        _attempt(problems, lambda: tool_wheel(job.config, job.config.install_tool, allowed=job.allowed_tools))
    installing = _distro_packages(job, problems)
    for package in job.config.symlink_system_packages:
        if package not in installing:
            _attempt(problems, functools.partial(_linkable, job.config, package))
    if job.config.facts:
        _attempt(problems, lambda: _facts_folder(job.facts_dir))
    problems += _space(job)
    if problems or python is None:
        raise PreconditionError(problems)
    return python


def _attempt(problems: list[str], call: Callable[[], T], fix: str = "") -> T | None:
    """Return ``call()``; on a VenvshipError, add its line (and ``fix``) to ``problems``."""
    try:
        return call()
    except VenvshipError as exc:
        problems.append(f"{exc}{fix}")
        return None


def _runs_as(python: str, identity: tuple[int, int], user: str) -> None:
    """Raise unless ``user`` (the health check's) can start ``python``: the venv's interpreter is
    this one, and a user who cannot read it would fail the check only after the pull and the unpack."""
    argv = python_argv(python, "-c", "pass", site=False)
    try:
        proc = run(
            argv, env=allowed_env(), cwd=ISOLATED_CWD, check=False, pass_fds=(), user=identity, kind="probe"
        )
        failed, said = proc.returncode != 0, proc.stdout
    except ProcessError as exc:  # it could not even be started
        failed, said = True, exc.output
    if failed:
        tail = " | ".join(said.strip().splitlines()[-2:]) or "no output"
        raise InstallError(
            f"python {python}: the health check's user {user} cannot run it ({tail}); use an "
            "interpreter every user can read, or pass --check-user root"
        )


def _distro_packages(job: Preflight, problems: list[str]) -> frozenset[str]:
    """Return the runtime distro packages this install will install; note those it cannot."""
    if not job.distro_packages:
        return frozenset()
    p = _attempt(problems, lambda: plan("install", job.config.install_distro_packages))
    if p is None:
        return frozenset()
    if os.geteuid() == 0:
        return frozenset(p.wanted)
    if p.missing:
        problems.append(f"missing distro packages: {', '.join(p.missing)}; run as root: {p.install_command}")
    return frozenset()


def _linkable(config: VenvConfig, package: str) -> None:
    """Raise unless ``package`` is installed with Python files for the artifact's Python."""
    try:
        files = package_files(package)
    except InstallError as exc:
        if "not installed" not in str(exc):
            raise
        raise InstallError(
            f"distro package {package!r} is not installed (symlink-system-packages): install it or "
            "add it to [venv.install] distro-packages"
        ) from exc
    minor = int(config.python.abi[3:].rstrip("t") or 0)
    top_level_entries(package, files, minor=minor, distro_minor=distro_python_minor())


def _facts_folder(path: Path) -> None:
    """Raise unless the facts folder (or, where it is still to be made, the folder above) is trusted."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    trust.check_tree(existing, what="the facts folder" if existing == path else "the folder of the facts")
    # Checked here, not when the facts are written: a user who may not write there learns it before
    # the pull and the switch, not after them.
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == path else f" (to make {path} in)"
        raise InstallError(
            f"{existing}{made}: the facts folder is not writable by this user: name one with "
            "--facts-dir DIR, or run it as root"
        )


def _space(job: Preflight) -> list[str]:
    """Return a line for each file system without room for what this install writes to it."""
    missing = [d for d in job.needed if not job.cache.has_blob(d.digest, d.size)]
    pulled = sum(d.size for d in missing)
    if job.from_wheels:
        to_unpack = 0
        venv = UNPACKED * sum(w.size for w in job.config.lock)
    else:
        to_unpack = UNPACKED * sum(
            d.size for d in job.needed if not store.entry_path(job.cache.root, d.digest).is_dir()
        )
        # A generation copies the store's files (its own, for hot patches); only bytecode is linked
        # and reflinks cost nothing, neither of which can be told before the unpack: counted whole.
        venv = UNPACKED * sum(d.size for d in job.needed)
    needs: dict[int | None, tuple[Path, int, str]] = {}
    for path, size, what in (
        (job.cache.root, pulled + to_unpack, "the blobs to pull, and their files once unpacked"),
        (job.dest.parent, venv, "the venv's files"),
    ):
        device = _device(path)
        if device in needs:
            first, total, why = needs[device]
            needs[device] = (first, total + size, f"{why}, and {what}")
        else:
            needs[device] = (path, size, what)
    out = []
    for path, size, what in needs.values():
        free = free_bytes(path)
        if size and free is not None and free < size:
            out.append(
                f"{path}: {human_size(free)} free on its file system, about {human_size(size)} needed "
                f"({what}, estimated at {UNPACKED}x the compressed size); free some space, or use "
                "--cache or --dest on another file system"
            )
    return out


def _device(path: Path) -> int | None:
    """Return the device of ``path``'s file system (of its nearest existing folder)."""
    for folder in (path, *path.parents):
        try:
            return os.stat(folder).st_dev
        except OSError:
            continue
    return None
