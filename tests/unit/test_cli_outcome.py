"""How a command ends when its reader goes away: `venvship inspect REF | head` printed
`venvship: error: [Errno 32] Broken pipe`."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from venvship.cli.outcome import run_command

def many_lines() -> int:
    for i in range(200000):
        print(f"line {i}")
    return 0

sys.exit(run_command("venvship", 30, many_lines))
"""


def test_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()  # as `head -1` does once it has its line
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert stderr == ""
