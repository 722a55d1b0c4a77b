"""Link distro Python packages (``python3-libvirt`` ...) into a venv's site-packages."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from .._process import ISOLATED_CWD, allowed_env, python_argv, run
from ..errors import InstallError
from ..host.distro import run_package_tool, system_tool
from ..host.info import distro_family

# .../python3/dist-packages/<top>/... or .../python3.11/site-packages/<top>
_SITE = re.compile(r"^(?P<root>/.*/python3(?:\.(?P<minor>\d+))?/(?:site|dist)-packages)/(?P<top>[^/]+)")
_SO_ABI = re.compile(r"\.cpython-3(?P<minor>\d+)")


def package_files(package: str) -> list[str]:
    """Return the files of distro package ``package`` (dpkg -L or rpm -ql)."""
    family = distro_family()
    if family == "debian" and system_tool("dpkg"):
        argv = ["dpkg", "-L", package]
    elif family == "redhat" and system_tool("rpm"):
        argv = ["rpm", "-ql", package]
    else:
        raise InstallError(f"cannot list files of distro package {package!r} on this host ({family})")
    proc = run_package_tool(argv)  # never the caller's DPKG_ADMINDIR: root links what it lists
    if proc.returncode != 0 or "not installed" in proc.stdout:
        raise InstallError(f"distro package {package!r} is not installed (needed by symlink-system-packages)")
    return [line.strip() for line in proc.stdout.splitlines() if line.startswith("/")]


def top_level_entries(
    package: str, files: Sequence[str], *, minor: int, distro_minor: int | None
) -> list[Path]:
    """Return the top-level site-packages entries of ``files`` (modules, packages, .so, metadata)."""
    tops: dict[str, Path] = {}
    for name in files:
        match = _SITE.match(name)
        if not match:
            continue
        top = match.group("top")
        if top == "__pycache__" or top.endswith(".pth"):
            continue
        # /usr/lib/python3/dist-packages names no minor version: it belongs to the distro python.
        found = match.group("minor") or (str(distro_minor) if distro_minor is not None else None)
        abi = _SO_ABI.search(top)
        for got in (found, abi.group("minor") if abi else None):
            if got is not None and int(got) != minor:
                raise InstallError(
                    f"distro package {package!r} is for Python 3.{got}, the venv runs Python 3.{minor}"
                )
        tops[top] = Path(match.group("root")) / top
    if not tops:
        raise InstallError(f"distro package {package!r} has no files under python3*/site- or dist-packages")
    return [tops[k] for k in sorted(tops)]


def link_system_packages(packages: Sequence[str], *, site: Path, minor: int) -> list[str]:
    """Symlink each package's top-level entries into ``site``; return the names linked."""
    linked: list[str] = []
    distro_minor = distro_python_minor() if packages else None
    for package in packages:
        files = package_files(package)
        for target in top_level_entries(package, files, minor=minor, distro_minor=distro_minor):
            if not os.path.lexists(target):
                continue  # dpkg lists directories it shares with other packages; only real ones
            link = site / target.name
            if os.path.lexists(link):
                raise InstallError(f"distro package {package!r}: {target.name} already exists in the venv")
            os.symlink(target, link)
            linked.append(target.name)
    return linked


def distro_python_minor() -> int | None:
    """Return the minor version of /usr/bin/python3 (the distro python), or None if absent."""
    if not os.path.exists("/usr/bin/python3"):
        return None
    argv = python_argv("/usr/bin/python3", "-c", "import sys; print(sys.version_info[1])", site=False)
    out = run(argv, env=allowed_env(), cwd=ISOLATED_CWD, kind="probe").stdout
    return int(out.strip().splitlines()[-1])
