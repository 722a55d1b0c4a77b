"""At the default verbosity an install is never silent for more than about two seconds."""

from __future__ import annotations

import subprocess
import time

from .conftest import Artifacts, Pull, Wheels
from .test_faults import _kill, _start_paused


def _stderr_times(pull: Pull, *args: str) -> tuple[list[tuple[float, str]], float, int]:
    """Run venv-pull; return (arrival time, line) of each stderr line, the end time and the exit code."""
    start = time.monotonic()
    proc = subprocess.Popen(
        pull.argv(*args), env=pull.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    lines = [(time.monotonic() - start, line.rstrip("\n")) for line in proc.stderr]
    code = proc.wait(timeout=180)
    proc.stderr.close()
    return lines, time.monotonic() - start, code


def test_a_slow_install_speaks_every_two_seconds(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo2, wheels.helper])
    lines, end, code = _stderr_times(pull, "install", ref, "--check-command", "sleep 7")
    assert code == 0, lines
    times = [0.0] + [t for t, _ in lines] + [end]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 3.5, lines
    texts = [text for _, text in lines]
    assert any(text.startswith("installing: 2/2 then the health check (") for text in texts), texts
    assert any(text.startswith("installing: 2/2 done in ") for text in texts), texts


def test_waiting_for_a_lock_says_so(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo1])
    # The first run stops while it holds the destination's lock (the installer's pause seam).
    first = _start_paused(pull, ref, "locked")
    second = subprocess.Popen(
        pull.argv("install", ref),
        env=pull.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert second.stderr is not None
    try:
        lines = []
        for line in second.stderr:  # the holder is let go only once the waiter has said why it waits
            lines.append(line.rstrip("\n"))
            if line.startswith("waiting for ") and "which another run holds" in line:
                break
        _kill(first)
        lines += [line.rstrip("\n") for line in second.stderr]
        code = second.wait(timeout=180)
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait(timeout=30)
        second.stderr.close()
    assert code == 0, lines
    lock = pull.dest.parent / ".demo.venvship" / ".lock"
    assert any(text.startswith(f"waiting for {lock}, which another run holds") for text in lines), lines
