"""Every child process has a time limit: per kind, changed by an environment variable, and on
expiry its whole process group is killed and one line says which limit and how to change it."""

from __future__ import annotations

import gc
import os
import signal
import time
import warnings

import pytest
from tests.processes import running, sleep_marker

from venvship._process import TIMEOUTS, run, time_limit
from venvship.errors import ProcessTimeout, VenvshipError


def test_a_child_past_its_limit_is_killed_with_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENVSHIP_TIMEOUT_PROBE", "0.5")
    sleep = sleep_marker()
    start = time.monotonic()
    with pytest.raises(ProcessTimeout) as caught:
        run(["/bin/sh", "-c", f"{sleep} & {sleep}"], kind="probe")
    assert time.monotonic() - start < 15
    assert str(caught.value) == (
        "a query (sh) was killed after 0.5s, its time limit; "
        "set VENVSHIP_TIMEOUT_PROBE to more seconds (0: no limit) to allow longer"
    )
    assert running(sleep) == []  # the background grandchild went too


def test_limits_are_generous_and_can_be_changed_or_lifted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(seconds >= 120 for seconds, _ in TIMEOUTS.values())
    assert time_limit("health") == 600
    monkeypatch.setenv("VENVSHIP_TIMEOUT_HEALTH", "30")
    assert time_limit("health") == 30
    monkeypatch.setenv("VENVSHIP_TIMEOUT_HEALTH", "0")
    assert time_limit("health") is None
    assert run(["true"], kind="health").returncode == 0
    monkeypatch.setenv("VENVSHIP_TIMEOUT_HEALTH", "ten")
    with pytest.raises(VenvshipError, match="VENVSHIP_TIMEOUT_HEALTH='ten': not a number of seconds"):
        run(["true"], kind="health")


def test_a_grandchild_that_left_the_group_leaves_no_pipe_open_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A grandchild in a session of its own outlives the group kill and keeps the output pipe
    open: the timeout still ends the run, and this process's end of the pipes is closed."""
    monkeypatch.setenv("VENVSHIP_TIMEOUT_PROBE", "0.5")
    sleep = sleep_marker()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with pytest.raises(ProcessTimeout):
                run(["/bin/sh", "-c", f"setsid {sleep} & {sleep}"], kind="probe")
            gc.collect()
    finally:
        for pid in running(sleep, within=0):
            os.kill(int(pid), signal.SIGKILL)
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)], [str(w.message) for w in seen]
