"""kill -9 at named points, reruns that converge, and concurrent runs on one destination."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from venvship.artifact.documents import Fact

from .conftest import Artifacts, Pull, Wheels


def _start_paused(
    pull: Pull, ref: str, point: str, *extra: str, seconds: str = "3600"
) -> subprocess.Popen[str]:
    """Start an install that stops at ``point`` (the installer's test seam) and wait until it does."""
    # VENVSHIP_TEST_PAUSE_AT is a fault-injection seam: the installer sleeps at that named point
    # so the test can kill -9 it exactly there.
    env = pull.env({"VENVSHIP_TEST_PAUSE_AT": point, "VENVSHIP_TEST_PAUSE_SECONDS": seconds})
    proc = subprocess.Popen(pull.argv("install", ref, *extra), env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if f"paused at {point}" in line:
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    proc.wait()
    raise AssertionError(f"the installer never reached {point!r} (exit {proc.poll()})")


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stderr is not None
    proc.stderr.close()


@pytest.mark.parametrize("point", ["pulling", "pulled", "installed", "checked", "committed", "switched"])
def test_kill_9_then_rerun_converges(artifacts: Artifacts, wheels: Wheels, pull: Pull, point: str) -> None:
    old = pull.install(artifacts.write([wheels.demo1]))
    # Two new blobs, so that "pulling" (after the first of several) stops in the middle of the pull.
    ref2 = artifacts.write([wheels.demo2, wheels.helper], version="2.0", facts=_facts())
    _kill(_start_paused(pull, ref2, point))
    # Whatever the point, the destination is a complete venv: the old one or the new one.
    version = pull.python("import demo; print(demo.VERSION)")
    assert version == ("2.0" if point == "switched" else "1.0")
    result = pull.install(ref2)
    assert result["changed"] is True
    assert result["previous_digest"] == old["digest"]
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"
    assert "venvship_digest = " + result["digest"] in (pull.facts / "demo.fact").read_text()
    assert not [p for p in (pull.dest.parent / ".demo.venvship").iterdir() if p.name.endswith(".partial")]
    assert pull.install(ref2)["changed"] is False


def _facts() -> list[Fact]:
    return [Fact(file="demo", section="demo", option="venv_tag", value="2.0")]


def test_concurrent_installs_wait_for_each_other(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo1])
    first = _start_paused(pull, ref, "locked", seconds="3")
    try:
        impatient = pull("install", ref, "--lock-timeout", "0.5", ok=False)
        assert impatient.returncode == 1 and "still locked" in impatient.stderr
        start = time.monotonic()
        second = pull.install(ref)  # waits for the first run, then finds nothing to do
        assert time.monotonic() - start > 1
        assert second["changed"] is False
    finally:
        assert first.wait(timeout=60) == 0
        assert first.stderr is not None
        first.stderr.close()
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"


def test_partial_left_behind_is_removed(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo1])
    _kill(_start_paused(pull, ref, "venv"))
    root = pull.dest.parent / ".demo.venvship"
    assert [p.name for p in root.iterdir() if p.name.endswith(".partial")]
    assert not os.path.lexists(pull.dest)
    pull.install(ref)
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        os.readlink(pull.dest).split("/")[-1]
    ]
    assert Path(pull.dest).resolve().is_dir()
