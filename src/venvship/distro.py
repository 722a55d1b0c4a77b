"""Distro packages: the original role's per-distro base lists, a check, and an install when root.

Stdlib only: the target side installs runtime packages with it, the build side build packages.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from ._log import logger
from ._process import child_env, run
from .errors import DistroError, ProcessError
from .hostinfo import distro_family

Stage = Literal["build", "install"]

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
    """What a stage needs from the distro and what is missing."""

    family: str
    wanted: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def install_command(self) -> str:
        if self.family == "redhat":
            return "dnf install -y " + " ".join(self.missing)
        return "apt-get install -y " + " ".join(self.missing)


def wanted_packages(stage: Stage, extra: Sequence[str], *, family: str | None = None) -> tuple[str, ...]:
    """Return the base list for ``stage`` on this distro plus ``extra``, sorted and de-duplicated."""
    fam = family or distro_family()
    base = BASE_PACKAGES.get(fam, {}).get(stage, ())
    return tuple(sorted({p for p in (*base, *extra) if p}))


def missing_packages(packages: Sequence[str], *, family: str | None = None) -> tuple[str, ...]:
    """Return the packages of ``packages`` that are not installed (dpkg-query or rpm)."""
    fam = family or distro_family()
    if not packages:
        return ()
    if fam == "debian" and shutil.which("dpkg-query"):
        proc = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *packages], check=False)
        installed = {
            line.split()[0].split(":")[0] for line in proc.stdout.splitlines() if line.endswith(" installed")
        }
        return tuple(p for p in packages if p.split(":")[0] not in installed)
    if fam == "redhat" and shutil.which("rpm"):
        return tuple(p for p in packages if run(["rpm", "-q", p], check=False).returncode != 0)
    raise DistroError(f"cannot check distro packages on this host (family {fam!r}): {', '.join(packages)}")


def plan(stage: Stage, extra: Sequence[str], *, family: str | None = None) -> DistroPlan:
    """Return the stage's wanted packages and which of them are missing."""
    fam = family or distro_family()
    wanted = wanted_packages(stage, extra, family=fam)
    return DistroPlan(family=fam, wanted=wanted, missing=missing_packages(wanted, family=fam))


def _apt_lists_age() -> float:
    stamp = Path("/var/cache/apt/pkgcache.bin")
    try:
        return time.time() - stamp.stat().st_mtime
    except OSError:
        return float("inf")


def ensure(
    stage: Stage,
    extra: Sequence[str],
    *,
    state: Literal["present", "latest"] = "present",
    cache_valid_time: int = 600,
    family: str | None = None,
) -> tuple[str, ...]:
    """Make the stage's distro packages present; return the packages installed.

    Installs only as root; otherwise raises DistroError naming the missing packages and the
    command that installs them.
    """
    p = plan(stage, extra, family=family)
    todo = p.wanted if state == "latest" else p.missing
    if not todo:
        return ()
    if os.geteuid() != 0:
        if not p.missing:
            return ()
        raise DistroError(
            f"missing {stage} distro packages: {', '.join(p.missing)}; run as root: {p.install_command}"
        )
    # Unattended installs must never stop to ask a question.
    env = child_env({"DEBIAN_FRONTEND": "noninteractive"})
    # No lock descriptor goes to the package manager: a maintainer script may start a daemon that
    # would hold the lock for as long as it runs.
    try:
        if p.family == "debian":
            if _apt_lists_age() > cache_valid_time:
                run(["apt-get", "update", "-q"], env=env, pass_fds=())
            run(["apt-get", "install", "-y", "-q", *todo], env=env, pass_fds=())
        elif p.family == "redhat":
            verb = "install" if state == "present" else "upgrade"
            run(["dnf", verb, "-y", *todo], pass_fds=())
        else:
            raise DistroError(f"no package manager known for distro family {p.family!r}")
    except ProcessError as exc:
        raise DistroError(f"installing {', '.join(todo)} failed:\n{exc.output[-2000:]}") from exc
    logger.info("installed distro packages: %s", " ".join(todo))
    return todo
