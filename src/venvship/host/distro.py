"""Distro packages: the original role's per-distro base lists, a check, and an install when root.

Stdlib only: the target side installs runtime packages with it, the build side build packages.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

from .._log import activity, logger
from .._process import ISOLATED_CWD, PROXY_VARIABLES, SYSTEM_PATH, Kind, allowed_env, run
from ..errors import DistroError, ProcessError
from .info import distro_family

Side = Literal["build", "install"]
State = Literal["present", "latest"]

# vars/debian.yml and vars/redhat.yml of the original role.
BASE_PACKAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "debian": {
        "build": (
            "cmake",
            "g++",
            "python3-pkgconfig",
            "python3-dev",
            "python3-venv",
            "python3-packaging",
            "python3-setuptools",
        ),
        "install": ("python3-packaging", "python3-setuptools", "python3-venv"),
    },
    "redhat": {
        "build": ("autoconf", "cmake", "gcc", "gcc-c++", "python3-devel", "python3-packaging"),
        "install": ("python3-packaging",),
    },
}

CA_BUNDLE = {
    "debian": "/etc/ssl/certs/ca-certificates.crt",
    "redhat": "/etc/pki/tls/certs/ca-bundle.crt",
}


@dataclass(frozen=True)
class DistroPlan:
    """What a side needs from the distro and what is missing."""

    family: str
    wanted: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def install_command(self) -> str:
        """Return the shell command that installs what is missing (for a person to run)."""
        return shlex.join(install_argv(self.family, "present", self.missing))


def package_manager_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of the package manager and its queries (apt-get, dnf, dpkg, rpm):
    the system PATH, the locale, the proxies, then ``extra``; nothing else of this process's.

    A shell that kept another user's environment (``su`` without ``-``) would otherwise hand them
    ``APT_CONFIG`` (hooks apt runs as root) or ``DPKG_ADMINDIR`` (the file lists ``dpkg -L`` reads,
    whose files root links into a venv).

    Example: ``package_manager_env({"DEBIAN_FRONTEND": "noninteractive"})``
    """
    env = allowed_env(keep=PROXY_VARIABLES)
    env["PATH"] = SYSTEM_PATH
    env.update(extra or {})
    return env


def system_tool(name: str) -> str | None:
    """Return the path of ``name`` on the system PATH (never the caller's), or None."""
    return shutil.which(name, path=SYSTEM_PATH)


def run_package_tool(argv: Sequence[str], *, kind: Kind = "probe") -> subprocess.CompletedProcess[str]:
    """Run a package query (``dpkg-query``, ``dpkg -L``, ``rpm -q``) in ``/`` with
    :func:`package_manager_env`; its exit status is the caller's to read."""
    return run(argv, env=package_manager_env(), cwd=ISOLATED_CWD, check=False, kind=kind)


def _check_names(packages: Sequence[str]) -> None:
    for name in packages:
        if name.startswith("-"):
            # Such a name once reached apt-get as an option; no package name starts with "-".
            raise DistroError(f"distro package name {name!r} starts with '-': refusing it")


def install_argv(family: str, state: State, packages: Sequence[str]) -> list[str]:
    """Return the command that makes ``packages`` present (or, with ``latest``, upgraded).

    ``dnf upgrade`` fails on a package that is not installed: for ``latest`` on the RHEL family,
    install the missing ones first (:func:`install_commands` does). No packages is an error:
    ``dnf upgrade`` with none upgrades every package of the host.

    Example: ``install_argv("redhat", "present", ["gcc"])`` → ``["dnf", "install", "-y", "--", "gcc"]``
    """
    if not packages:
        raise DistroError("no distro packages named: refusing a package manager run over all of them")
    _check_names(packages)
    if family == "debian":
        # apt-get install upgrades an installed package to the candidate: one command for both states.
        return ["apt-get", "install", "-y", "-q", "--", *packages]
    if family == "redhat":
        return ["dnf", "install" if state == "present" else "upgrade", "-y", "--", *packages]
    raise DistroError(f"no package manager known for distro family {family!r}")


def install_commands(p: DistroPlan, state: State) -> list[list[str]]:
    """Return the commands :func:`ensure` runs as root for plan ``p`` (none if nothing is to do)."""
    if state == "present" or p.family != "redhat":
        todo = p.wanted if state == "latest" else p.missing
        return [install_argv(p.family, state, todo)] if todo else []
    installed = [name for name in p.wanted if name not in p.missing]
    steps = [install_argv(p.family, "present", p.missing)] if p.missing else []
    return steps + ([install_argv(p.family, "latest", installed)] if installed else [])


def query_argv(family: str, package: str) -> list[str]:
    """Return the command whose exit status says whether ``package`` is installed (RHEL family).

    Example: ``query_argv("redhat", "gcc")`` → ``["rpm", "-q", "gcc"]``
    """
    _check_names([package])
    if family != "redhat":
        raise DistroError(f"no per-package query for distro family {family!r}")
    return ["rpm", "-q", package]


def wanted_packages(side: Side, extra: Sequence[str], *, family: str | None = None) -> tuple[str, ...]:
    """Return the base list for ``side`` on this distro plus ``extra``, sorted and de-duplicated."""
    fam = family or distro_family()
    base = BASE_PACKAGES.get(fam, {}).get(side, ())
    wanted = tuple(sorted({p for p in (*base, *extra) if p}))
    _check_names(wanted)
    return wanted


def missing_packages(packages: Sequence[str], *, family: str | None = None) -> tuple[str, ...]:
    """Return the packages of ``packages`` that are not installed (dpkg-query or rpm)."""
    fam = family or distro_family()
    if not packages:
        return ()
    if fam == "debian" and system_tool("dpkg-query"):
        argv = ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *packages]
        proc = run_package_tool(argv)
        installed = {
            line.split()[0].split(":")[0] for line in proc.stdout.splitlines() if line.endswith(" installed")
        }
        return tuple(p for p in packages if p.split(":")[0] not in installed)
    if fam == "redhat" and system_tool("rpm"):
        return tuple(p for p in packages if run_package_tool(query_argv(fam, p)).returncode != 0)
    raise DistroError(f"cannot check distro packages on this host (family {fam!r}): {', '.join(packages)}")


def plan(side: Side, extra: Sequence[str], *, family: str | None = None) -> DistroPlan:
    """Return the side's wanted packages and which of them are missing."""
    fam = family or distro_family()
    wanted = wanted_packages(side, extra, family=fam)
    return DistroPlan(family=fam, wanted=wanted, missing=missing_packages(wanted, family=fam))


@dataclass(frozen=True)
class Pending:
    """What :func:`ensure` is to do for one side: the packages to install and to upgrade, and
    the exact commands (an ``apt-get update`` first when the package lists are stale)."""

    side: Side
    install: tuple[str, ...]
    upgrade: tuple[str, ...]
    commands: tuple[tuple[str, ...], ...]

    def describe(self, *, verb: str = "running") -> str:
        """Return one line: ``install distro packages: install a b; upgrade c; running: apt-get …``."""
        what = [f"install {' '.join(self.install)}"] if self.install else []
        what += [f"upgrade {' '.join(self.upgrade)} (distro-package-state = latest)"] if self.upgrade else []
        run_text = " && ".join(shlex.join(c) for c in self.commands)
        return f"{self.side} distro packages: {'; '.join(what)}; {verb}: {run_text}"


def pending(
    side: Side,
    extra: Sequence[str],
    *,
    state: State = "present",
    cache_valid_time: int = 600,
    family: str | None = None,
) -> tuple[DistroPlan, Pending | None]:
    """Return the side's plan and what :func:`ensure` would do about it (None: nothing), running
    nothing but the query of what is installed. Only the named packages are ever upgraded.

    Example: ``print(pending("install", ["libxml2"])[1].describe(verb="would run"))``
    """
    p = plan(side, extra, family=family)
    todo = p.wanted if state == "latest" else p.missing
    if not todo:
        return p, None
    commands = [tuple(argv) for argv in install_commands(p, state)]
    if p.family == "debian" and _apt_lists_age() > cache_valid_time:
        commands.insert(0, ("apt-get", "update", "-q"))
    upgrade = tuple(name for name in p.wanted if name not in p.missing) if state == "latest" else ()
    return p, Pending(side=side, install=p.missing, upgrade=upgrade, commands=tuple(commands))


def _apt_lists_age() -> float:
    stamp = Path("/var/cache/apt/pkgcache.bin")
    try:
        return time.time() - stamp.stat().st_mtime
    except OSError:
        return float("inf")


def ensure(
    side: Side,
    extra: Sequence[str],
    *,
    state: State = "present",
    cache_valid_time: int = 600,
    family: str | None = None,
) -> tuple[str, ...]:
    """Make the side's distro packages present; return the packages installed.

    Installs only as root, saying first what and with which commands; otherwise raises
    DistroError naming the missing packages and the command that installs them.
    """
    p, todo = pending(side, extra, state=state, cache_valid_time=cache_valid_time, family=family)
    if todo is None:
        return ()
    if os.geteuid() != 0:
        if not p.missing:
            return ()
        raise DistroError(
            f"missing {side} distro packages: {', '.join(p.missing)}; run as root: {p.install_command}"
        )
    logger.info("%s", todo.describe())
    # Unattended installs must never stop to ask a question.
    env = package_manager_env({"DEBIAN_FRONTEND": "noninteractive"})
    # No lock descriptor goes to the package manager: a maintainer script may start a daemon that
    # would hold the lock for as long as it runs.
    try:
        with activity(f"installing {side} distro packages"):
            for argv in todo.commands:
                run(argv, env=env, cwd=ISOLATED_CWD, pass_fds=(), kind="distro")
    except ProcessError as exc:
        names = ", ".join(todo.install + todo.upgrade)
        raise DistroError(f"installing {names} failed:\n{exc.output[-2000:]}") from exc
    return todo.install + todo.upgrade
