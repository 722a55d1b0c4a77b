"""A full file system anywhere (the cache while pulling, the store while unpacking, the generation)
is one line naming the path with its free bytes, leaves nothing half-written, and the next run
after freeing space simply works."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import fill
from venvship.cli import venv_pull_main
from venvship.install import preflight

from .conftest import Artifacts, Pull, big_wheel


def _paused(pull: Pull, ref: str, point: str, *args: str) -> subprocess.Popen[str]:
    """Start an install that sleeps 3 s at the named test seam, once it has got there."""
    env = pull.env({"VENVSHIP_TEST_PAUSE_AT": point, "VENVSHIP_TEST_PAUSE_SECONDS": "3"})
    argv = pull.argv("install", ref, *args, defaults=False)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if f"paused at {point}" in line or not line:
            return proc
    raise AssertionError(f"never paused at {point}")


def _finish(proc: subprocess.Popen[str]) -> tuple[int, list[str]]:
    _, err = proc.communicate(timeout=120)
    return proc.returncode, [line for line in err.splitlines() if line.startswith("venv-pull: error: ")]


def _leftovers(*roots: Path) -> list[str]:
    """Return what a failed run must never leave: staging generations, temp files, half unpacks."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            name = path.name
            if name.endswith((".partial", ".tmp", ".doomed")) or name.startswith(".in-"):
                found.append(str(path))
    return found


def _paths(pull: Pull, cache: Path, dest: Path) -> list[str]:
    return [
        "--dest",
        str(dest),
        "--cache",
        str(cache),
        "--facts-dir",
        str(pull.facts),
        "--no-distro-packages",
    ]


def test_a_full_store_while_unpacking(
    artifacts: Artifacts, pull: Pull, small_fs: Callable[[str], Path], tmp_path: Path
) -> None:
    ref = artifacts.write([big_wheel(tmp_path / "big", "bulk", 1.5)])
    fs = small_fs("16m")
    cache = fs / "cache"
    proc = _paused(pull, ref, "pulled", *_paths(pull, cache, pull.dest))
    fill(fs, leave=64 << 10)  # while it sleeps between the pull and the unpacking
    code, errors = _finish(proc)
    assert code == 1
    [line] = errors
    assert line.startswith(f"venv-pull: error: {cache}: no space left on device (")
    assert line.endswith(" free); free some space and run again")
    assert _leftovers(cache, pull.dest.parent) == []
    assert not os.path.lexists(pull.dest)
    for filler in fs.glob(".filler-*"):
        filler.unlink()
    assert pull.install(ref, *_paths(pull, cache, pull.dest), defaults=False)["changed"] is True


def test_a_full_generation(
    artifacts: Artifacts, pull: Pull, small_fs: Callable[[str], Path], tmp_path: Path
) -> None:
    ref = artifacts.write([big_wheel(tmp_path / "big", "bulk", 1.0)])
    fs = small_fs("32m")
    dest = fs / "venvs" / "demo"
    proc = _paused(pull, ref, "pulled", *_paths(pull, pull.cache, dest))
    fill(fs, leave=16 << 10)
    code, errors = _finish(proc)
    assert code == 1
    [line] = errors
    assert line.startswith(f"venv-pull: error: {dest.parent / '.demo.venvship'}: no space left on device (")
    assert _leftovers(pull.cache, dest.parent) == []
    for filler in fs.glob(".filler-*"):
        filler.unlink()
    assert pull.install(ref, *_paths(pull, pull.cache, dest), defaults=False)["changed"] is True


def test_a_full_cache_while_pulling(
    artifacts: Artifacts,
    pull: Pull,
    small_fs: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = artifacts.write([big_wheel(tmp_path / "big", "bulk", 1.5)])
    fs = small_fs("16m")
    cache = fs / "cache"
    fill(fs, leave=256 << 10)
    # The space check finds this before any pull; here the pull itself meets the full disk, as
    # when another writer fills it in the middle of a run.
    monkeypatch.setattr(preflight, "check_preconditions", lambda job: job.python)
    assert venv_pull_main.main(["install", ref, *_paths(pull, cache, pull.dest)]) == 1
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith(f"venv-pull: error: {cache}: no space left on device (")
    assert " needed); free some space and run again" in line
    assert _leftovers(cache) == []
