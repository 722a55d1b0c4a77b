"""Debian roots made with debootstrap once and kept in the tests' cache as tarballs, one per
(suite, architecture, packages): the role's Debian 12 targets, the arm64 root, the Debian 11 and
13 targets (#24).

The first session runs ``debootstrap --variant=minbase`` (a few minutes each, from the Debian
mirror); later sessions only unpack the tarball, once per root. :func:`start` makes tarballs in
background threads while other tests run; :func:`tarball` joins them (or makes one now). Every
child process has a deadline.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pytest

from tests.conftest import CACHE
from tests.needs import require

# What a target of the role has: python3 (Ansible's modules, venv-pull), the packages the role's
# install side lists for Debian (python3-packaging, -setuptools, -venv), and openssl (venv-pull's
# signature checks; the Debian 12 amd64 target of #24 is this same root).
INCLUDE = ("python3", "python3-venv", "python3-packaging", "python3-setuptools", "openssl")
MIRROR = os.environ.get("VENVSHIP_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBOOTSTRAP_TIMEOUT = 3600  # an arm64 root's second stage runs emulated
TAR_TIMEOUT = 600
SHORT_TIMEOUT = 60
PIP_TIMEOUT = 900
# venvship's own dependencies, what building venvship needs, and pip itself, for a root's offline
# pip (run from its wheel: the root's venv module would byte-compile a pip of its own first).
DEPS = (
    "packaging",
    "tomli",
    "PyYAML",
    "cryptography",
    "cyclonedx-python-lib",
    "setuptools>=68",
    "wheel",
    "pip",
)


@dataclass(frozen=True)
class Root:
    """A Debian root: its suite (``bookworm``), architecture and the packages debootstrap adds."""

    suite: str
    arch: str = "amd64"
    include: tuple[str, ...] = INCLUDE

    @property
    def debootstrap(self) -> tuple[str, ...]:
        return (
            "debootstrap",
            f"--arch={self.arch}",
            "--variant=minbase",
            f"--include={','.join(self.include)}",
            self.suite,
        )

    @property
    def tarball(self) -> Path:
        """The cached tarball; its name holds a hash of what went into it (command and mirror)."""
        digest = hashlib.sha256(repr((self.debootstrap, MIRROR)).encode()).hexdigest()[:12]
        return CACHE / "roots" / f"debian-{self.suite}-{self.arch}-{digest}.tar"


DEBIAN12 = Root("bookworm")
_background: dict[Root, threading.Thread] = {}
_failures: dict[Root, BaseException] = {}


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


def _make_tarball(spec: Root) -> None:
    prefix = f"{spec.tarball.stem}-"  # work folders of this tarball only (its lock is held)
    for stale in spec.tarball.parent.glob(prefix + "*"):
        remove_root(stale)  # left by a session killed while making it
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=spec.tarball.parent))
    try:
        root = work / "root"
        run([*spec.debootstrap, str(root), MIRROR], timeout=DEBOOTSTRAP_TIMEOUT)
        if _mounts_under(root):
            pytest.fail(f"{root}: debootstrap left mounts: {', '.join(_mounts_under(root))}", pytrace=False)
        part = work / "root.tar"
        run(
            ["tar", "-C", str(root), "--numeric-owner", "--one-file-system", "-cf", str(part), "."],
            timeout=TAR_TIMEOUT,
        )
        os.replace(part, spec.tarball)  # readers see the whole tarball or none
    finally:
        remove_root(work)


def _made(spec: Root) -> Path:
    """Return ``spec``'s tarball, made first if missing (one maker per tarball on this machine)."""
    spec.tarball.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.tarball.with_suffix(".lock"), "w") as lock:
        deadline = time.monotonic() + DEBOOTSTRAP_TIMEOUT
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{lock.name}: held past the deadline", pytrace=False)
                time.sleep(1)
        if not spec.tarball.exists():
            _make_tarball(spec)
    return spec.tarball


def start(*specs: Root, prepare: Callable[[], None] | None = None) -> None:
    """Make the missing tarballs of ``specs`` in background threads, side by side (as root only).

    ``prepare`` runs first in each thread (an arm64 root needs qemu-user in binfmt_misc); what it
    or a maker raises is raised again by :func:`tarball`, in the test that needs the root.
    """
    if not (os.geteuid() == 0 and shutil.which("debootstrap")):
        return  # tarball() then says what is missing, in the test that needs it

    def make(spec: Root) -> None:
        try:
            if prepare is not None:
                prepare()
            _made(spec)
        except BaseException as exc:
            _failures[spec] = exc

    for spec in specs:
        if spec not in _background and not spec.tarball.exists():
            _background[spec] = threading.Thread(target=make, args=(spec,), daemon=True)
            _background[spec].start()


def tarball(spec: Root) -> Path:
    """Return ``spec``'s cached tarball: joins its background maker, or makes it now."""
    require(shutil.which("debootstrap") is not None, "debootstrap", fix="apt-get install debootstrap")
    maker = _background.get(spec)
    if maker is not None:
        maker.join(DEBOOTSTRAP_TIMEOUT + TAR_TIMEOUT)
        if maker.is_alive():
            pytest.fail(f"{spec.tarball}: its maker did not end in time", pytrace=False)
        if spec in _failures:
            raise _failures[spec]
    return _made(spec)


def debian12_tarball() -> Path:
    """Return the cached Debian 12 amd64 root tarball, made first if missing."""
    return tarball(DEBIAN12)


def unpack_root(dest: Path, *, tarball: Path | None = None) -> Path:
    """Unpack a fresh Debian 12 amd64 root (or the root ``tarball`` holds) into ``dest`` and return it."""
    tarball = tarball or debian12_tarball()
    dest.mkdir(parents=True)
    run(["tar", "-C", str(dest), "--numeric-owner", "-xpf", str(tarball)], timeout=TAR_TIMEOUT)
    return dest


def mount_proc(root: Path) -> None:
    """Mount a proc filesystem on ``root``'s ``/proc``, as a real host has (:func:`remove_root` unmounts it).

    Debian 11's setpriv (libcap-ng 0.7.9) cannot drop privileges without it: "setpriv: activate
    capabilities: No such file or directory".
    """
    run(["mount", "-t", "proc", "proc", str(root / "proc")], timeout=SHORT_TIMEOUT)


def run_in_root(
    root: Path, argv: Sequence[str], *, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` chrooted into ``root`` with a plain environment (plus ``env``); return the finished process.

    Example: ``run_in_root(root, ["/usr/bin/python3", "-c", "print(1)"]).stdout``
    """
    # The host's environment means nothing inside the root (its PATH, its PYTHON* settings).
    plain = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    if "VENVSHIP_BUILD_USER" in os.environ:
        plain["VENVSHIP_BUILD_USER"] = os.environ["VENVSHIP_BUILD_USER"]
    return subprocess.run(
        ["chroot", str(root), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**plain, **(env or {})},
        check=False,
    )


def dependency_wheels(python: str, platforms: Sequence[str]) -> Path:
    """Return a folder of venvship's dependencies as wheels for CPython ``python`` on ``platforms``
    (manylinux tags), downloaded once from PyPI.

    ``python`` is the root's full version (``"3.9.2"``): pip takes a bare ``"3.9"`` for 3.9.0, and
    cryptography 44 and later exclude 3.9.0 and 3.9.1 in their Requires-Python.
    """
    major, minor = python.split(".")[:2]
    abi = f"cp{major}{minor}"
    digest = hashlib.sha256(repr((python, tuple(platforms), DEPS)).encode()).hexdigest()[:12]
    folder = CACHE / "roots" / f"venvship-deps-{abi}-{platforms[0]}-{digest}"
    marker = folder / ".done"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        target = ["--only-binary=:all:", *(a for p in platforms for a in ("--platform", p))]
        target += ["--python-version", python, "--implementation", "cp", "--abi", abi]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--dest", str(folder), *target, *DEPS],
            check=True,
            timeout=PIP_TIMEOUT,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        )
        marker.touch()
    return folder


def python_version(root: Path) -> str:
    """Return the full version of ``root``'s ``/usr/bin/python3`` (``"3.9.2"``)."""
    argv = ["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"]
    proc = run_in_root(root, argv, timeout=SHORT_TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed in {root}:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc.stdout.strip()


def venvship_in_root(root: Path, venv: str, platforms: Sequence[str]) -> str:
    """Install this checkout of venvship into a venv ``venv`` inside ``root``; return its ``bin/venvship``.

    Offline: venvship's dependencies come from PyPI as wheels for the root's own Python on
    ``platforms`` (:func:`dependency_wheels`), copied into the root.
    """
    wheels = dependency_wheels(python_version(root), platforms)
    src = Path(__file__).resolve().parents[2]
    shutil.copytree(src / "src", root / "opt/venvship-src/src", dirs_exist_ok=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(src / name, root / "opt/venvship-src" / name)
    shutil.copytree(wheels, root / "opt/wheels", dirs_exist_ok=True)
    [pip] = wheels.glob("pip-*.whl")
    # No ensurepip: it byte-compiles pip, which takes about 40 s emulated in an arm64 root. pip
    # runs from its wheel instead and installs itself with the rest, without bytecode.
    install = [f"{venv}/bin/python", f"/opt/wheels/{pip.name}/pip", "install", "-q", "--no-compile"]
    install += ["--no-index", "--find-links", "/opt/wheels", "pip", "/opt/venvship-src"]
    for argv in (["/usr/bin/python3", "-m", "venv", "--without-pip", venv], install):
        proc = run_in_root(root, argv, timeout=1800)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed in {root}:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return f"{venv}/bin/venvship"
