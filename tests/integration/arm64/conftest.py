"""An arm64 Debian 12 root run through qemu-user, made once and kept in the tests' cache (#15).

The first session runs ``debootstrap --arch=arm64`` (the second stage runs under qemu, which is
slow); it tars the finished root into ``$VENVSHIP_TEST_CACHE/roots/`` (``tests/integration/roots.py``). Later sessions only
unpack that tarball. Every child process has a deadline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration import roots
from tests.integration.roots import TAR_TIMEOUT, Root, remove_root, run, run_in_root
from tests.needs import ROOT, require

__all__ = ["ARM64", "TARBALL", "arm64_root", "prepare_host", "run_in_root", "venvship_in_root"]

# gcc and the headers: an arm64 build compiles its C extensions in the root; ca-certificates: the
# build's tool venvs come from PyPI.
ARM64 = Root(
    "bookworm", "arm64", ("python3", "python3-venv", "python3-dev", "gcc", "libc6-dev", "ca-certificates")
)
TARBALL = ARM64.tarball
HOST_PACKAGES = ("debootstrap", "qemu-user-static", "binfmt-support")
QEMU = Path("/usr/bin/qemu-aarch64-static")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# venvship's own dependencies as aarch64 wheels (cryptography, PyYAML and cffi are compiled).
AARCH64 = ("manylinux_2_17_aarch64", "manylinux2014_aarch64")
# Deadlines: apt may wait for another apt's lock.
APT_TIMEOUT = 900
SHORT_TIMEOUT = 60
_PREPARING = threading.Lock()


def venvship_in_root(root: Path, venv: str) -> str:
    """Install this checkout of venvship into a venv ``venv`` inside the arm64 ``root``; return its
    ``bin/venvship`` (offline, from venvship's dependencies as aarch64 wheels)."""
    return roots.venvship_in_root(root, venv, AARCH64)


def _host_tools() -> None:
    """Install debootstrap and qemu-user-static when they are missing (root only, else skip)."""
    if shutil.which("debootstrap") and QEMU.exists() and shutil.which("update-binfmts"):
        return
    require(
        shutil.which("apt-get") is not None,
        f"{', '.join(HOST_PACKAGES)} for an arm64 root",
        fix=f"install them (Debian: apt-get install {' '.join(HOST_PACKAGES)})",
    )
    # Wait (bounded) for another apt to finish instead of failing on its lock.
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "--no-install-recommends"]
    first = subprocess.run(
        [*install, *HOST_PACKAGES],
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if first.returncode != 0:
        # Stale or missing package lists: refresh once, then the same install.
        run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], timeout=APT_TIMEOUT)
        run([*install, *HOST_PACKAGES], timeout=APT_TIMEOUT)


def _binfmt() -> None:
    """Make the kernel run aarch64 binaries through qemu-aarch64-static."""
    if not os.path.ismount(BINFMT):
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], timeout=SHORT_TIMEOUT)
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists():
        # binfmt-support's postinst could not register it while binfmt_misc was unmounted.
        run(["update-binfmts", "--import", "qemu-aarch64"], timeout=SHORT_TIMEOUT)
    if not entry.exists() or "enabled" not in entry.read_text().splitlines()[0]:
        run(["update-binfmts", "--enable", "qemu-aarch64"], timeout=SHORT_TIMEOUT)
    if not entry.exists() or "enabled" not in entry.read_text().splitlines()[0]:
        pytest.fail(f"{entry}: qemu-aarch64 is not enabled in binfmt_misc", pytrace=False)


def prepare_host() -> None:
    """Make this host ready to debootstrap and run an arm64 root: qemu-user-static in binfmt_misc.

    Called by the root's background maker and by the fixture: one at a time.
    """
    with _PREPARING:
        _host_tools()
        _binfmt()


@pytest.fixture(scope="session")
def arm64_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Return an arm64 Debian 12 root (minbase, python3, venv, gcc and headers) whose binaries run here.

    Needs root (debootstrap, chroot, binfmt_misc); the root is unpacked from the cached tarball,
    made first if the cache lacks it, and removed at the end of the session.
    """
    require(ROOT, "root for an arm64 root (debootstrap, chroot, binfmt_misc)", fix="run the tests as root")
    prepare_host()
    tarball = roots.tarball(ARM64)
    root = tmp_path_factory.mktemp("arm64") / "root"
    root.mkdir()
    try:
        run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(tarball)], timeout=TAR_TIMEOUT)
        yield root
    finally:
        remove_root(root)
