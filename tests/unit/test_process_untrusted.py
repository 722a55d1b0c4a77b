"""Children that may run a dependency's code cannot read venvship's environment or memory through
``/proc`` (#20): as a user without root, and as root (whose children drop every capability)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.needs import needs_root

# Run by the child: which of its parent's /proc files it may open (the kernel checks on open).
PROBE = (
    "import os\n"
    "for name in ('environ', 'mem'):\n"
    "    try:\n"
    "        os.close(os.open('/proc/%d/%s' % (os.getppid(), name), os.O_RDONLY))\n"
    "        print(name, 'readable')\n"
    "    except OSError:\n"
    "        print(name, 'closed')\n"
)
PARENT = (
    "import sys\n"
    "from venvship._process import run\n"
    "print(run([sys.executable, '-c', sys.argv[1]], untrusted=True).stdout, end='')\n"
)


@needs_root
def test_an_untrusted_child_of_the_same_user_cannot_read_its_parent(src_for_others: Path) -> None:
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I"]
    env = {"PATH": "/usr/bin:/bin"}
    # -I: no PYTHONPATH, no working folder on sys.path; a copy of venvship that nobody can read goes in.
    script = f"import sys; sys.path.insert(0, {str(src_for_others)!r})\n" + PARENT
    proc = subprocess.run([*argv, "-c", script, PROBE], env=env, cwd="/", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["environ closed", "mem closed"]


@needs_root
def test_an_untrusted_child_of_root_cannot_read_its_parent() -> None:
    proc = subprocess.run([sys.executable, "-c", PARENT, PROBE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["environ closed", "mem closed"]


WITHHOLDING_PARENT = (
    "import os, sys\n"
    "from venvship._process import run, withhold\n"
    "withhold('s3cret-value')\n"
    "probe = \"import os; print(sorted(k for k, v in os.environ.items() if 's3cret' in v))\"\n"
    "print(run([sys.executable, '-c', probe], untrusted=True).stdout, end='')\n"
    "print(run([sys.executable, '-c', probe], env=dict(os.environ), untrusted=True).stdout, end='')\n"
    "print(run([sys.executable, '-c', probe]).stdout, end='')\n"
)


def test_an_untrusted_child_gets_no_variable_holding_a_withheld_secret() -> None:
    """A CI job's copy of the registry password (CI_REGISTRY_PASSWORD, CI_JOB_TOKEN) stays out of
    dependencies' build code, whatever its name (#20); a variable merely containing it is kept."""
    env = {**os.environ, "CI_JOB_TOKEN": "s3cret-value", "REGISTRY_PASSWORD": " s3cret-value\n"}
    env["NOT_IT"] = "s3cret-value-and-more"
    proc = subprocess.run([sys.executable, "-c", WITHHOLDING_PARENT], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "['NOT_IT']",
        "['NOT_IT']",
        "['CI_JOB_TOKEN', 'NOT_IT', 'REGISTRY_PASSWORD']",  # a child venvship trusts is not changed
    ]
