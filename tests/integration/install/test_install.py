"""venv-pull install: real venvs, real offline installs with pip and uv, from an OCI layout."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.needs import needs
from venvship.artifact.documents import Fact
from venvship.host.info import distro_family

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels, tree_snapshot


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_offline_install_from_layout(artifacts: Artifacts, wheels: Wheels, pull: Pull, tool: str) -> None:
    ref = artifacts.write([wheels.demo2, wheels.helper], install_tool=tool)
    result = pull.install(ref)
    assert result["changed"] is True
    assert result["packages"] == 2
    assert result["dest"] == str(pull.dest)
    assert result["digest"].startswith("sha256:")
    assert result["previous_digest"] == ""
    assert result["generation"] == result["digest"][7:19]
    assert pull.dest.is_symlink()
    assert pull.python("import demo, helper; print(demo.VERSION)") == "2.0"
    # No pip in the venv: the installer ran from the artifact's own tool wheel.
    assert pull.python("import importlib.util as u; print(u.find_spec('pip'))") == "None"
    # Console scripts name the final generation, not the staging folder.
    script = pull.dest / "bin" / "demo-cli"
    assert ".partial" not in script.read_text()
    assert subprocess.run([script], capture_output=True, text=True, check=True).stdout.strip() == "2.0"
    # Bytecode was compiled (despite PYTHONDONTWRITEBYTECODE in the caller's environment).
    site = next(pull.dest.glob("lib/python3*/site-packages"))
    assert list((site / "demo" / "__pycache__").glob("*.pyc"))
    assert pull("verify", str(pull.dest)).returncode == 0


def test_noop_rerun_writes_nothing(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo1])
    pull.install(ref)
    before = tree_snapshot(pull.dest.parent, pull.cache, pull.facts)
    time.sleep(0.05)
    result = pull.install(ref)
    assert result["changed"] is False
    assert result["facts_written"] is False
    assert tree_snapshot(pull.dest.parent, pull.cache, pull.facts) == before


def test_facts_are_written_only_when_they_change(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    """A rebuild makes a new generation each time; the facts file is rewritten only if its
    content changes (a no-op run returns before the facts and cannot show this)."""
    ref = artifacts.write([wheels.demo1], facts=[Fact("demo", "demo", "venv_tag", "1.0")])
    assert pull.install(ref)["facts_written"] is True
    pull.install(ref, "--rebuild")
    fact_file = pull.facts / "demo.fact"
    before = os.stat(fact_file)
    time.sleep(0.05)  # a rewrite within the same mtime tick would hide; the inode would still tell
    again = pull.install(ref, "--rebuild")
    assert again["changed"] is True and again["facts_written"] is False
    after = os.stat(fact_file)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "venv_tag = 1.0" in fact_file.read_text()


def test_check_writes_nothing(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo1])
    result = pull.install(ref, "--check")
    assert result["changed"] is True
    assert result["facts_written"] is False and result["check"] is True
    assert not os.path.lexists(pull.dest.parent) and not pull.cache.exists() and not pull.facts.exists()
    pull.install(ref)
    ref2 = artifacts.write([wheels.demo2], version="2.0")
    before = tree_snapshot(pull.dest.parent, pull.cache, pull.facts)
    result = pull.install(ref2, "--check")
    assert result["changed"] is True
    # What the new generation would hold, read from the artifact: nothing pulled for it.
    assert result["lock"] == [{"name": "demo", "version": "2.0"}]
    assert tree_snapshot(pull.dest.parent, pull.cache, pull.facts) == before
    assert pull.install(ref, "--check")["changed"] is False


def test_upgrade_rollback_and_keep(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref1 = artifacts.write([wheels.demo1])
    ref2 = artifacts.write([wheels.demo2], version="2.0")
    first = pull.install(ref1)
    second = pull.install(ref2)
    assert second["previous_digest"] == first["digest"]
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"
    rolled = pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts))
    assert "rolled back" in rolled.stdout
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"
    # --rebuild: a fresh generation for the same digest.
    rebuilt = pull.install(ref1, "--rebuild", "--keep", "1")
    assert rebuilt["changed"] is True and rebuilt["digest"] == first["digest"]
    assert rebuilt["generation"] != first["generation"]
    gens = [p.name for p in (pull.dest.parent / ".demo.venvship").iterdir() if not p.name.startswith(".")]
    assert gens == [rebuilt["generation"]]


def test_after_a_rollback_every_report_names_where_the_next_one_goes(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    fact = [Fact(file="demo", section="demo", option="venv_tag", value="1.0")]
    ref1 = artifacts.write([wheels.demo1], facts=fact)
    first = pull.install(ref1)
    second = pull.install(artifacts.write([wheels.demo2], version="2.0", facts=fact))
    pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts))
    # The facts, install --json and status agree: a rollback now goes to 2.0, the one rolled back from.
    facts = configparser.ConfigParser()
    facts.read(pull.facts / "demo.fact")
    assert facts["demo"]["venvship_previous_digest"] == second["digest"]
    again = pull.install(ref1)
    assert again["changed"] is False and again["previous_digest"] == second["digest"]
    status = pull("status", str(pull.dest), "--cache", str(pull.cache)).stdout.splitlines()
    assert [line[:3] for line in status[1:]] == [" * ", " < "]  # live 1.0; 2.0 where rollback goes
    data = json.loads(pull("status", str(pull.dest), "--cache", str(pull.cache), "--json").stdout)
    assert data["current"] == first["generation"] and data["rollback_to"] == second["generation"]
    # A second rollback goes forward to 2.0, and says so.
    rolled = pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts), "--json")
    assert json.loads(rolled.stdout)["forward"] is True
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"
    text = pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts)).stdout
    assert text.startswith(f"{pull.dest}: rolled back from")  # from 2.0 to 1.0, its previous: back


def test_a_venv_made_by_the_role_is_moved_aside(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    subprocess.run([DISTRO_PYTHON, "-m", "venv", "--without-pip", pull.dest], check=True)
    (pull.dest / "marker").write_text("made by the original role")
    ref = artifacts.write([wheels.demo1])
    proc = pull("install", ref, "--adopt")
    assert "a venv made without venv-pull; keeping it as a generation to roll back to" in proc.stderr
    assert pull.dest.is_symlink()
    kept = list((pull.dest.parent / ".demo.venvship").glob("original-*/marker"))
    assert len(kept) == 1
    status = pull("status", str(pull.dest), "--cache", str(pull.cache)).stdout
    assert "(adopted)" in status


def test_a_folder_that_is_no_venv_is_never_moved_aside(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    pull.dest.mkdir(parents=True)
    (pull.dest / "notes.txt").write_text("someone's files")
    proc = pull("install", artifacts.write([wheels.demo1]), ok=False)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert (
        line
        == f"venv-pull: error: {pull.dest}: exists and is not a venv (no pyvenv.cfg and bin/python); refusing to move it aside"
    )
    assert sorted(p.name for p in pull.dest.iterdir()) == ["notes.txt"]
    assert not (pull.dest.parent / ".demo.venvship").exists() or not any(
        p.name.endswith(".partial") for p in (pull.dest.parent / ".demo.venvship").iterdir()
    )
    assert not pull.cache.exists() or not list(
        (pull.cache / "blobs" / "sha256").iterdir()
    )  # checked before the pull


def test_health_check_failure_keeps_old_venv(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    first = pull.install(artifacts.write([wheels.demo1]))
    bad = artifacts.write([wheels.demo1, wheels.broken], version="2.0")
    proc = pull("install", bad, ok=False)
    assert proc.returncode == 1
    assert "broken on purpose" in proc.stderr
    assert "Traceback" not in proc.stderr.splitlines()[0]
    assert os.readlink(pull.dest).endswith(first["generation"])
    # The failed generation is discarded at once: only the live one remains.
    gens = [p.name for p in (pull.dest.parent / ".demo.venvship").iterdir() if not p.name.startswith(".")]
    assert gens == [first["generation"]]


def test_check_command(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo2])
    proc = pull("install", ref, "--check-command", "demo-cli --nope; exit 3", ok=False)
    assert proc.returncode == 1
    assert "venv-pull: error: health check failed (check command 'demo-cli --nope; exit 3', exit 3):" in (
        proc.stderr.splitlines()
    ), proc.stderr
    pull.install(ref, "--check-command", "python -c 'import demo'")
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"


def test_usage_errors(pull: Pull, tmp_path: Path) -> None:
    assert pull("install", ok=False, defaults=False).returncode == 2
    proc = pull("install", "not a ref", ok=False)
    assert proc.returncode == 1 and proc.stderr.startswith("venv-pull: error: not a ref")
    proc = pull("install", f"oci:{tmp_path}/nope:demo:1.0", ok=False)
    assert proc.returncode == 1 and "not an OCI image layout" in proc.stderr


@needs(distro_family() == "debian", "dpkg", fix="run the tests on a Debian-family host")
def test_check_shows_the_distro_packages_and_the_command_it_would_run(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo1], distro_packages=["venvship-no-such-package"])
    paths = ["--dest", str(pull.dest), "--cache", str(pull.cache), "--facts-dir", str(pull.facts)]
    proc = pull("install", ref, "--check", *paths, defaults=False)
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("install distro packages: ")]
    assert line.startswith("install distro packages: install ") and "venvship-no-such-package" in line
    assert "; would run: " in line and line.endswith(" venvship-no-such-package")
    assert "apt-get install -y -q -- " in line
    assert not os.path.lexists(pull.dest.parent) and not pull.cache.exists()
