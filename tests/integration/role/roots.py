"""Debian 12 amd64 roots for the role's targets: debootstrapped once, kept in the tests' cache as a tarball.

The first session runs ``debootstrap --variant=minbase`` (a few minutes, from the Debian mirror);
later sessions only unpack the tarball, once per root. Every child process has a deadline.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Sequence

import pytest

from tests.conftest import CACHE
from tests.needs import require

SUITE = "bookworm"
# What a target of the role has: python3 (Ansible's modules, venv-pull) and the packages the
# role's install side lists for Debian (python3-packaging, -setuptools, -venv).
INCLUDE = ("python3", "python3-venv", "python3-packaging", "python3-setuptools")
MIRROR = os.environ.get("VENVSHIP_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBOOTSTRAP = ("debootstrap", "--arch=amd64", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE)
TARBALL = (
    CACHE
    / "roots"
    / f"debian-{SUITE}-amd64-{hashlib.sha256(repr((DEBOOTSTRAP, MIRROR)).encode()).hexdigest()[:12]}.tar"
)
DEBOOTSTRAP_TIMEOUT = 1800
TAR_TIMEOUT = 600
SHORT_TIMEOUT = 60


def run(argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (output captured); fail the test with the output's tail if it fails."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)}: no end after {timeout} s", pytrace=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        pytest.fail(f"{' '.join(argv)} failed ({proc.returncode}):\n{tail}", pytrace=False)
    return proc


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def remove_root(root: Path) -> None:
    """Remove ``root``, only once nothing is mounted below it."""
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=SHORT_TIMEOUT, check=False)
    left = _mounts_under(root)
    if left:
        pytest.fail(f"{root}: still mounted below it, not removed: {', '.join(left)}", pytrace=False)
    shutil.rmtree(root, ignore_errors=True)


def _make_tarball() -> None:
    for stale in TARBALL.parent.glob("amd64-*"):
        remove_root(stale)  # left by a session killed while making it
    work = Path(tempfile.mkdtemp(prefix="amd64-", dir=TARBALL.parent))
    try:
        root = work / "root"
        run([*DEBOOTSTRAP, str(root), MIRROR], timeout=DEBOOTSTRAP_TIMEOUT)
        if _mounts_under(root):
            pytest.fail(f"{root}: debootstrap left mounts: {', '.join(_mounts_under(root))}", pytrace=False)
        part = work / "root.tar"
        run(
            ["tar", "-C", str(root), "--numeric-owner", "--one-file-system", "-cf", str(part), "."],
            timeout=TAR_TIMEOUT,
        )
        os.replace(part, TARBALL)  # readers see the whole tarball or none
    finally:
        remove_root(work)


def debian12_tarball() -> Path:
    """Return the cached Debian 12 amd64 root tarball, made first if missing (one maker at a time)."""
    require(shutil.which("debootstrap") is not None, "debootstrap", fix="apt-get install debootstrap")
    TARBALL.parent.mkdir(parents=True, exist_ok=True)
    with open(TARBALL.parent / ".lock", "w") as lock:
        deadline = time.monotonic() + DEBOOTSTRAP_TIMEOUT
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{TARBALL.parent}/.lock: held past the deadline", pytrace=False)
                time.sleep(1)
        if not TARBALL.exists():
            _make_tarball()
    return TARBALL


def unpack_root(dest: Path, *, tarball: Path | None = None) -> Path:
    """Unpack a fresh Debian 12 amd64 root (or the root ``tarball`` holds) into ``dest`` and return it."""
    tarball = tarball or debian12_tarball()
    dest.mkdir(parents=True)
    run(["tar", "-C", str(dest), "--numeric-owner", "-xpf", str(tarball)], timeout=TAR_TIMEOUT)
    return dest
