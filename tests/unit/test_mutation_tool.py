"""tests/mutation.py stops a module's run at its budget without leaving anything behind: no test
run still going against a mutant (cosmic-ray starts each in a session of its own)."""

from __future__ import annotations

import subprocess
import time

from tests.mutation import _kill_tree, _unmade
from tests.processes import running, sleep_marker


def test_the_budgets_end_takes_every_process_the_run_started() -> None:
    sleep = sleep_marker()
    # A child and, as cosmic-ray's test runs are, a grandchild in a session (and group) of its own.
    proc = subprocess.Popen(["/bin/sh", "-c", f"setsid {sleep} & exec {sleep}"])
    deadline = time.monotonic() + 10
    while len(running(sleep, within=0)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(running(sleep, within=0)) == 2
    _kill_tree(proc)
    assert running(sleep) == []


def test_only_cosmic_rays_failure_to_make_a_mutant_is_left_out() -> None:
    # The tails of two workers' tracebacks as cosmic-ray records them.
    making = (
        'File ".../cosmic_ray/mutating.py", line 130, in apply_mutation\n'
        "    return MutationVisitor.mutate_path(module_path, operator, occurrence)\n"
        "AttributeError: 'PythonNode' object has no attribute 'value'\n"
    )
    testing = (
        'File ".../cosmic_ray/mutating.py", line 75, in mutate_and_test\n'
        "    test_outcome, output = run_tests(test_command, timeout)\n"
        "OSError: [Errno 24] Too many open files\n"
    )
    assert _unmade(making) and not _unmade(testing)
