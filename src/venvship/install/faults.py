"""The fault-injection seam the tests use to ``kill -9`` venv-pull at named points."""

from __future__ import annotations

import os
import time

PAUSE_ENV = "VENVSHIP_TEST_PAUSE_AT"


def pause_point(name: str) -> None:
    """Fault-injection seam for tests: sleep at the named point so a test can ``kill -9`` us here.

    Only active when ``VENVSHIP_TEST_PAUSE_AT`` names this point; it announces itself on stderr.
    """
    if os.environ.get(PAUSE_ENV) == name:
        os.write(2, f"venvship-test: paused at {name}\n".encode())
        time.sleep(float(os.environ.get("VENVSHIP_TEST_PAUSE_SECONDS", "3600")))
