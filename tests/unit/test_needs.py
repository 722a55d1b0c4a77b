"""Under CI=true nothing skips silently: a test missing what it needs fails and says what to install
(tests/needs.py, the hook in tests/conftest.py); locally it skips with the same words."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.pythons import TEST_PYTHONS

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import pytest

from tests.needs import needs, require

def test_missing_tool():
    require(False, "a-tool", fix="apt-get install a-tool")

@needs(False, "root", fix="run the tests as root")
def test_missing_privilege():
    pass

def test_bare_skip():
    pytest.skip("no reason given")

@pytest.mark.may_skip("an opt-in run")
def test_opt_in():
    pytest.skip("set OPT_IN=1 to run it")

@pytest.mark.xfail(strict=True)
def test_known_bug():
    assert False

def test_present():
    require(True, "python", fix="-")
"""


def _run_probe(tmp_path: Path, *, ci: str | None) -> str:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    if ci is not None:
        env["CI"] = ci
    # The suite's own conftest as a plugin (the probe lives outside tests/), rooted in tmp_path.
    argv = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    argv += ["-rfEs", "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "base"), str(tmp_path)]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return proc.stdout


def test_under_ci_a_missing_need_fails_and_names_what_to_install(tmp_path: Path) -> None:
    out = _run_probe(tmp_path, ci="true")
    # A skip in a test fails it; a skip from a marker (in set-up) makes it an error: both count.
    assert "2 failed, 1 passed, 1 skipped, 1 xfailed, 1 error in " in out, out
    said = "CI=true: this test may not skip: "
    assert f"::test_missing_tool - {said}needs a-tool: apt-get install a-tool\n" in out
    assert f"::test_missing_privilege - {said}needs root: run the tests as root\n" in out
    assert f"::test_bare_skip - {said}no reason given\n" in out
    assert "test_probe.py:18: set OPT_IN=1 to run it\n" in out  # may_skip: still a skip


@pytest.mark.parametrize("ci", [None, "false"])
def test_elsewhere_a_missing_need_skips_with_the_same_words(tmp_path: Path, ci: str | None) -> None:
    out = _run_probe(tmp_path, ci=ci)
    assert "1 passed, 4 skipped, 1 xfailed" in out, out
    assert "needs a-tool: apt-get install a-tool" in out and "needs root: run the tests as root" in out


def test_every_python_a_test_requires_is_one_the_session_provides() -> None:
    """./noxw -s tests installs tests/pythons.py's TEST_PYTHONS: a test asking for another version
    would fail under CI on a fresh machine (3.6, which no installer offers, is marked may_skip)."""
    asked = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        asked |= set(re.findall(r'require_python\("(\d\.\d+)"\)', path.read_text()))
    assert asked and asked <= set(TEST_PYTHONS), asked - set(TEST_PYTHONS)
