"""An arm64 Debian 12 root run through qemu-user, made once and kept in the tests' cache (#15).

The first session runs ``debootstrap --arch=arm64`` (the second stage runs under qemu, which is
slow); it tars the finished root into ``$VENVSHIP_TEST_CACHE/arm64/``. Later sessions only
unpack that tarball. Every child process has a deadline.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from tests.conftest import CACHE
from tests.needs import ROOT, require

SUITE = "bookworm"
# gcc and the headers: an arm64 build compiles its C extensions in the root; ca-certificates: the
# build's tool venvs come from PyPI.
INCLUDE = ("python3", "python3-venv", "python3-dev", "gcc", "libc6-dev", "ca-certificates")
MIRROR = os.environ.get("VENVSHIP_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBOOTSTRAP = ("debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE)
HOST_PACKAGES = ("debootstrap", "qemu-user-static", "binfmt-support")
QEMU = Path("/usr/bin/qemu-aarch64-static")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# The name holds what went into the root: changing the suite, the packages or the mirror makes a new one.
TARBALL = (
    CACHE
    / "arm64"
    / f"debian-{SUITE}-arm64-{hashlib.sha256(repr((DEBOOTSTRAP, MIRROR)).encode()).hexdigest()[:12]}.tar"
)
WHEELS = CACHE / "arm64" / "venvship-deps-cp311-aarch64"
# venvship's own dependencies as aarch64 wheels (cryptography, PyYAML and cffi are compiled), and
# what building venvship needs, downloaded once for the root's pip (no network inside it).
DEPS = ("packaging", "PyYAML", "cryptography", "cyclonedx-python-lib", "setuptools>=68", "wheel")
AARCH64_CP311 = (
    "--only-binary=:all:",
    *("--platform", "manylinux_2_17_aarch64", "--platform", "manylinux2014_aarch64"),
    *("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"),
)
# Deadlines: apt may wait for another apt's lock; debootstrap's second stage runs emulated.
APT_TIMEOUT = 900
DEBOOTSTRAP_TIMEOUT = 3600
TAR_TIMEOUT = 600
SHORT_TIMEOUT = 60


def _run(argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (output captured); fail the test with the output's tail if it fails."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        proc = None
    if proc is None:
        pytest.fail(f"{' '.join(argv)}: no end after {timeout} s", pytrace=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        pytest.fail(f"{' '.join(argv)} failed ({proc.returncode}):\n{tail}", pytrace=False)
    return proc


def aarch64_wheels() -> Path:
    """Return a folder of venvship's dependencies as aarch64 cp311 wheels, downloaded once."""
    marker = WHEELS / ".done"
    if not marker.exists():
        WHEELS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--dest", str(WHEELS), *AARCH64_CP311, *DEPS],
            check=True,
            timeout=900,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        )
        marker.touch()
    return WHEELS


def run_in_root(root: Path, argv: Sequence[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` chrooted into ``root`` with a plain environment; return the finished process.

    Example: ``run_in_root(arm64_root, ["/usr/bin/python3", "-c", "print(1)"]).stdout``
    """
    # The host's environment means nothing inside the root (its PATH, its PYTHON* settings).
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(
        ["chroot", str(root), *argv], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def venvship_in_root(root: Path, venv: str) -> str:
    """Install this checkout of venvship into a venv ``venv`` inside ``root``; return its ``bin/venvship``.

    Offline: venvship's dependencies come from :func:`aarch64_wheels`, copied into the root.
    """
    src = Path(__file__).resolve().parents[3]
    shutil.copytree(src / "src", root / "opt/venvship-src/src", dirs_exist_ok=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(src / name, root / "opt/venvship-src" / name)
    shutil.copytree(aarch64_wheels(), root / "opt/wheels", dirs_exist_ok=True)
    for argv in (
        ["/usr/bin/python3", "-m", "venv", venv],
        [
            f"{venv}/bin/pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            "/opt/wheels",
            "/opt/venvship-src",
        ],
    ):
        proc = run_in_root(root, argv, timeout=1800)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed in {root}:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return f"{venv}/bin/venvship"


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
        _run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], timeout=APT_TIMEOUT)
        _run([*install, *HOST_PACKAGES], timeout=APT_TIMEOUT)


def _binfmt() -> None:
    """Make the kernel run aarch64 binaries through qemu-aarch64-static."""
    if not os.path.ismount(BINFMT):
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], timeout=SHORT_TIMEOUT)
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists():
        # binfmt-support's postinst could not register it while binfmt_misc was unmounted.
        _run(["update-binfmts", "--import", "qemu-aarch64"], timeout=SHORT_TIMEOUT)
    if not entry.exists() or "enabled" not in entry.read_text().splitlines()[0]:
        _run(["update-binfmts", "--enable", "qemu-aarch64"], timeout=SHORT_TIMEOUT)
    if not entry.exists() or "enabled" not in entry.read_text().splitlines()[0]:
        pytest.fail(f"{entry}: qemu-aarch64 is not enabled in binfmt_misc", pytrace=False)


def _mounts_under(root: Path) -> list[str]:
    """Return the mount points at or below ``root``, deepest first."""
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_root(root: Path) -> None:
    """Remove ``root``: only after nothing is mounted below it (debootstrap mounts /proc, /sys, /dev)."""
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=SHORT_TIMEOUT, check=False)
    left = _mounts_under(root)
    if left:
        pytest.fail(f"{root}: still mounted below it, not removed: {', '.join(left)}", pytrace=False)
    shutil.rmtree(root, ignore_errors=True)


def _make_tarball() -> None:
    """Debootstrap an arm64 root next to the cache and keep it there as one tarball (under the lock)."""
    for stale in TARBALL.parent.glob("arm64-*"):
        _remove_root(stale)  # left by a session killed while making it
    work = Path(tempfile.mkdtemp(prefix="arm64-", dir=TARBALL.parent))
    try:
        root = work / "root"
        _run([*DEBOOTSTRAP, str(root), MIRROR], timeout=DEBOOTSTRAP_TIMEOUT)
        # debootstrap unmounts what it mounted; a leftover mount must not go into the tarball.
        if _mounts_under(root):
            pytest.fail(f"{root}: debootstrap left mounts: {', '.join(_mounts_under(root))}", pytrace=False)
        part = work / "root.tar"
        _run(
            ["tar", "-C", str(root), "--numeric-owner", "--one-file-system", "-cf", str(part), "."],
            timeout=TAR_TIMEOUT,
        )
        os.replace(part, TARBALL)  # readers see the whole tarball or none
    finally:
        _remove_root(work)


def _lock(fd: int, *, deadline: float) -> None:
    """Take an exclusive flock on ``fd``, waiting until ``deadline`` at most."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{TARBALL.parent}/.lock: another session held it past the deadline", pytrace=False
                )
            time.sleep(1)


@pytest.fixture(scope="session")
def arm64_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Return an arm64 Debian 12 root (minbase, python3, venv, gcc and headers) whose binaries run here.

    Needs root (debootstrap, chroot, binfmt_misc); the root is unpacked from the cached tarball,
    made first if the cache lacks it, and removed at the end of the session.
    """
    require(ROOT, "root for an arm64 root (debootstrap, chroot, binfmt_misc)", fix="run the tests as root")
    _host_tools()
    _binfmt()
    TARBALL.parent.mkdir(parents=True, exist_ok=True)
    # One maker at a time: another session on this machine may be making the same tarball.
    with open(TARBALL.parent / ".lock", "w") as lock:
        _lock(lock.fileno(), deadline=time.monotonic() + DEBOOTSTRAP_TIMEOUT + APT_TIMEOUT)
        if not TARBALL.exists():
            _make_tarball()
    root = tmp_path_factory.mktemp("arm64") / "root"
    root.mkdir()
    try:
        _run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(TARBALL)], timeout=TAR_TIMEOUT)
        yield root
    finally:
        _remove_root(root)
