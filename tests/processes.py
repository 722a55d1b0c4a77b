"""Finding the processes a test started, by a marker of this run's own: ``pgrep -f`` sees the whole
machine, where other runs of the same test may have processes of the same name."""

from __future__ import annotations

import secrets
import subprocess
import time


def sleep_marker() -> str:
    """Return a ``sleep`` command line no other run has: ``sleep 61.<nine random digits>``."""
    return f"sleep 61.{secrets.randbelow(10**9):09d}"


def running(marker: str, *, within: float = 10) -> list[str]:
    """Return the pids whose command line has ``marker``, as soon as there are none or at the
    deadline (a process killed a moment ago may still be on its way out)."""
    deadline = time.monotonic() + within
    while True:
        out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False).stdout
        if not out.split() or time.monotonic() > deadline:
            return out.split()
        time.sleep(0.05)
