"""Shared fixtures: a clean pip environment, a wheelhouse of build tools, tiny package factories."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Generator, Iterator

import pytest

from venvship.builder.pins import BUILD_TOOLS, INSTALL_TOOLS, versions_for

from .needs import CI, require

# The tools venvship pins (its builder venvs and the install tools it ships), for this Python and
# for 3.9 (the oldest target); downloaded once from PyPI into the tests' cache, kept between runs.
TOOL_PYTHONS = sorted({"3.9", "{}.{}".format(*sys.version_info[:2])})
TOOL_PINS = {
    version: sorted(f"{n}=={v}" for n, v in versions_for(version, {**BUILD_TOOLS, **INSTALL_TOOLS}).items())
    for version in TOOL_PYTHONS
}
CACHE = Path(os.environ.get("VENVSHIP_TEST_CACHE", Path.home() / ".cache" / "venvship-tests"))
# A build stops when a process of its build user runs that it did not start (#20). Its default
# user, nobody, also runs venv-pull's health checks (this run's, and any other on the machine) and
# often a service: the tests build as a uid of their own, in no passwd file, unless told another
# (the tests session gives its second run, beside the rest, 64200).
TESTS_BUILD_UID = 64300
# Who runs venv-pull's health check in the Debian-root suites (tests session: daemon, so that no
# user of theirs is the other run's).
CHECK_USER = os.environ.get("VENVSHIP_TEST_CHECK_USER", "")


def check_user_args() -> list[str]:
    """Return venv-pull's ``--check-user`` option for :data:`CHECK_USER`, or nothing (the default)."""
    return ["--check-user", CHECK_USER] if CHECK_USER else []


@pytest.fixture(scope="session", autouse=True)
def _clean_pip_environment() -> None:
    """Keep the host's pip configuration (extra indexes, find-links, caps) out of every test."""
    os.environ["PIP_CONFIG_FILE"] = os.devnull
    for key in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "UV_INDEX_URL", "PIP_CONSTRAINT"):
        os.environ.pop(key, None)
    os.environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _run_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    """venv-pull's runs log to a file of this test run's own, not to the host's /var/log."""
    os.environ["VENVSHIP_LOG"] = str(tmp_path_factory.mktemp("runlog") / "venv-pull.log")


def pytest_configure(config: pytest.Config) -> None:
    """Put the tests' folders in a fresh folder of this run's own, not in /tmp/pytest-of-root:
    every pytest run makes that one 0700 again, which would lock ``nobody`` (venv-pull's health
    check) out of a concurrent run's venvs."""
    config.addinivalue_line("markers", "may_skip(reason): an opt-in test that may skip under CI=true too")
    os.environ.setdefault("VENVSHIP_BUILD_USER", str(TESTS_BUILD_UID))  # before the roots' maker starts
    if config.option.basetemp is None and os.geteuid() == 0:
        import tempfile

        own = Path(tempfile.mkdtemp(prefix="venvship-tests-"))
        own.chmod(0o711)
        config.option.basetemp = str(own / "base")
        config.stash[_OWN_BASE] = own


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASE, None)
    if own is not None:
        import shutil

        shutil.rmtree(own, ignore_errors=True)


_OWN_BASE = pytest.StashKey[Path]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under ``CI=true`` a skip is a failure (tests/needs.py): CI runs every test, or says what it lacks.

    Only a test marked ``may_skip`` (an opt-in run) may still skip there; an xfail stays an xfail.
    """
    report = yield
    if (
        CI
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("may_skip") is None
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: this test may not skip: {reason.removeprefix('Skipped: ')}"
    return report


@pytest.fixture(scope="session")
def _traversable_basetemp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.geteuid() == 0:
        for folder in (base.parent, base):
            folder.chmod(folder.stat().st_mode | 0o011)
    return base


@pytest.fixture(autouse=True)
def _traversable_tmp(request: pytest.FixtureRequest, _traversable_basetemp: Path) -> None:
    """Let ``nobody`` reach the test's folders (pytest makes them 0700).

    venv-pull, run as root, runs the health check as ``nobody``, who must reach the new venv; on
    a real host its folders are root's and 0755. Traversal only: nobody lists nothing.
    """
    if os.geteuid() == 0 and "tmp_path" in request.fixturenames:
        path: Path = request.getfixturevalue("tmp_path")
        path.chmod(path.stat().st_mode | 0o011)


@pytest.fixture(scope="session")
def tool_wheels() -> Path:
    """Return a folder holding wheels of pip, setuptools, wheel and uv (from PyPI, cached)."""
    folder = CACHE / "tool-wheels"
    marker = folder / ("." + "_".join(p for pins in TOOL_PINS.values() for p in pins))
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a test run beside this one may be downloading them
        if not marker.exists():
            _download_tool_wheels(folder)
            marker.touch()
    return folder


def _download_tool_wheels(folder: Path) -> None:
    for version, pins in TOOL_PINS.items():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary=:all:",  # with their dependencies (wheel needs packaging)
                "--python-version",
                version,
                "-d",
                str(folder),
                *pins,
            ],
            check=True,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        )


@pytest.fixture(scope="session")
def src_for_others() -> Iterator[Path]:
    """Return a copy of ``src/`` that any user can read, for tests that run venvship as ``nobody``.

    The checkout itself may sit where only root can look (a ``mktemp -d`` clone is mode 0700).
    """
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="venvship-src-", dir="/tmp"))
    shutil.copytree(
        Path(__file__).resolve().parents[1] / "src" / "venvship",
        root / "venvship",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Return a function that mounts a tmpfs of the given size (``"2m"``) and returns its folder;
    each is unmounted after the test. Needs root (tests/needs.py)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        require(os.geteuid() == 0, "root to mount a small tmpfs", fix="run the tests as root")
        path = tmp_path / f"small-fs-{len(mounted)}"
        path.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        require(proc.returncode == 0, f"a tmpfs mount ({proc.stderr.strip()})", fix="run the tests as root")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, *, leave: int = 0) -> None:
    """Fill ``folder``'s file system until at most ``leave`` bytes are free."""
    fd = os.open(folder / f".filler-{time.monotonic_ns()}", os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\0" * (64 << 10)
    try:
        while True:
            st = os.statvfs(folder)
            left = st.f_bavail * st.f_frsize - leave
            if left <= 0:
                return
            os.write(fd, chunk[:left])
    except OSError:
        return  # full
    finally:
        os.close(fd)
