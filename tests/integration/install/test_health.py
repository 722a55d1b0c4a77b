"""The import check before the switch: real failures stop the install, imports that disturb each other do not."""

from __future__ import annotations

import time
from pathlib import Path

from tests.processes import running, sleep_marker

from .conftest import Artifacts, Pull, Wheels, make_wheel


def test_modules_that_disturb_each_other_pass(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    # Imported in one interpreter, pip (first) switches setuptools' distutils shim off and
    # setuptools then fails its own check; each imports fine on its own.
    pip, setuptools = (next(wheels.tools.glob(f"{name}-*.whl")) for name in ("pip", "setuptools"))
    result = pull.install(artifacts.write([wheels.demo1, pip, setuptools]))
    assert result["changed"] is True
    assert pull.python("import setuptools, pip; print('ok')") == "ok"


def test_a_module_that_fails_alone_still_fails(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    pip = next(wheels.tools.glob("pip-*.whl"))
    proc = pull("install", artifacts.write([wheels.broken, pip]), ok=False)
    assert proc.returncode == 1
    assert "cannot import broken:" in proc.stderr and "broken on purpose" in proc.stderr
    assert "cannot import pip" not in proc.stderr


def test_a_module_needing_what_only_its_server_provides_is_skipped(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # Like uWSGI's uwsgidecorators, which imports the uwsgi module only the server embeds.
    hosted = make_wheel(
        tmp_path,
        "hosted",
        "1.0",
        extra={
            "hosted_decorators.py": "import hosted_server_only\n",
            "hosted-1.0.dist-info/top_level.txt": "hosted\nhosted_decorators\n",
        },
    )
    pip = next(wheels.tools.glob("pip-*.whl"))
    proc = pull("install", artifacts.write([hosted, pip]))
    assert "skipped hosted_decorators: it needs hosted_server_only" in proc.stderr
    assert pull.python("import hosted; print(hosted.VERSION)") == "1.0"


def test_a_missing_module_of_the_venv_itself_still_fails(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # top_level.txt promises a module the wheel does not hold: a broken distribution.
    ghost = make_wheel(
        tmp_path,
        "ghost",
        "1.0",
        body="import ghostpart",
        extra={"ghost-1.0.dist-info/top_level.txt": "ghost\nghostpart\n"},
    )
    pip = next(wheels.tools.glob("pip-*.whl"))
    proc = pull("install", artifacts.write([ghost, pip]), ok=False)
    assert proc.returncode == 1
    assert "cannot import ghost" in proc.stderr and "No module named 'ghostpart'" in proc.stderr


def test_a_hung_check_is_killed_and_its_generation_discarded(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    pull.install(artifacts.write([wheels.demo1]))
    ref2 = artifacts.write([wheels.demo2], version="2.0")
    sleep = sleep_marker()
    hang = f"{sleep} & {sleep}"  # a check that never ends, and a child it left behind
    start = time.monotonic()
    proc = pull("install", ref2, "--check-command", hang, env={"VENVSHIP_TIMEOUT_HEALTH": "1"}, ok=False)
    assert proc.returncode == 1 and time.monotonic() - start < 60
    assert proc.stderr.splitlines()[-1] == (
        "venv-pull: error: the health check (sh) was killed after 1s, its time limit; "
        "set VENVSHIP_TIMEOUT_HEALTH to more seconds (0: no limit) to allow longer"
    )
    assert "Traceback" not in proc.stderr
    assert running(sleep) == []
    root = pull.dest.parent / ".demo.venvship"
    assert not [p for p in root.iterdir() if p.name.endswith(".partial")]
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"  # the live venv is untouched
