"""Host integration: symlinked distro packages, Ansible facts, maintenance commands, the zipapp."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
from pathlib import Path

import venvship
from tests.hostfacts import python_fact
from tests.needs import require_python
from venvship.artifact.documents import Fact
from venvship.install.zipapp import build_zipapp

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels, python_version


def test_symlinked_distro_package_is_importable(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo1], python=DISTRO_PYTHON, symlink=["python3-six"])
    pull.install(ref)
    site = next(pull.dest.glob("lib/python3*/site-packages"))
    assert (site / "six.py").is_symlink()
    assert os.readlink(site / "six.py") == "/usr/lib/python3/dist-packages/six.py"
    # The Debian package's own metadata folder (six-<version>.egg-info or .dist-info), whatever the release.
    [meta] = [p.name for p in Path("/usr/lib/python3/dist-packages").glob("six-*-info")]
    assert (site / meta).is_symlink()  # top-level entries, never flattened
    pyc = f"six.{python_fact(DISTRO_PYTHON, 'sys.implementation.cache_tag')}.pyc"
    assert not (site / "PKG-INFO").exists() and not (site / "__pycache__" / pyc).is_symlink()
    assert pull.python("import six, demo; print(six.__file__)").endswith("site-packages/six.py")
    assert pull("verify", str(pull.dest)).returncode == 0


def test_symlink_errors(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo1], python=DISTRO_PYTHON, symlink=["python3-no-such-package"])
    proc = pull("install", ref, ok=False)
    assert proc.returncode == 1 and "'python3-no-such-package' is not installed" in proc.stderr


def test_symlinked_package_of_another_python_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    py39 = require_python("3.9")
    ref = artifacts.write([wheels.demo1], version="2.0", python=str(py39), symlink=["python3-six"])
    proc = pull("install", ref, ok=False)
    distro = python_version(DISTRO_PYTHON)  # the one Python Debian's python3-six is for
    assert proc.returncode == 1 and f"is for Python {distro}, the venv runs Python 3.9" in proc.stderr


def test_facts_merged_into_existing_file(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    pull.facts.mkdir()
    fact_file = pull.facts / "openstack_ansible.fact"
    fact_file.write_text("[nova]\nvenv_tag = 30.0.0\n\n[demo]\nold_option = kept\n")
    facts = [Fact(file="openstack_ansible", section="demo", option="venv_tag", value="1.0")]
    ref1 = artifacts.write([wheels.demo1], facts=facts)
    result = pull.install(ref1)
    assert result["facts_written"] is True
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(fact_file)
    assert parser["nova"]["venv_tag"] == "30.0.0"
    assert parser["demo"]["old_option"] == "kept"
    assert parser["demo"]["venv_tag"] == "1.0"
    assert parser["demo"]["venvship_digest"] == result["digest"]
    assert parser["demo"]["venvship_previous_digest"] == ""
    assert parser["demo"]["venvship_version"] == venvship.__version__  # the installer's, not the venv's
    assert fact_file.stat().st_mode & 0o777 == 0o644
    mtime = fact_file.stat().st_mtime_ns
    assert pull.install(ref1)["changed"] is False
    assert fact_file.stat().st_mtime_ns == mtime
    second = pull.install(artifacts.write([wheels.demo2], version="2.0", facts=facts))
    parser.read(fact_file)
    assert parser["demo"]["venvship_previous_digest"] == result["digest"]
    pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts))
    parser.read(fact_file)
    assert parser["demo"]["venvship_digest"] == result["digest"]
    assert parser["demo"]["venvship_previous_digest"] == second["digest"]


def test_verify_detects_drift(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    pull.install(artifacts.write([wheels.demo2]))
    assert pull("verify", str(pull.dest)).returncode == 0
    site = next(pull.dest.glob("lib/python3*/site-packages"))
    (site / "demo" / "__init__.py").write_text("VERSION = 'tampered'\n")
    os.symlink("/nonexistent/target", site / "dangling")
    proc = pull("verify", str(pull.dest), "--json", ok=False)
    assert proc.returncode == 1
    drifted = json.loads(proc.stdout)["drifted"]
    assert any(d.startswith("modified: ") and d.endswith("demo/__init__.py") for d in drifted)
    assert any(d.startswith("dangling symlink: ") for d in drifted)


def test_prune_generations_and_blobs(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref1 = artifacts.write([wheels.demo1, wheels.helper])
    pull.install(ref1)
    pull.install(artifacts.write([wheels.demo2], version="2.0"))
    ref3 = artifacts.write([wheels.demo1], version="3.0")
    pull.install(ref3, "--keep", "3")
    blobs = pull.cache / "blobs" / "sha256"
    store = pull.cache / "unpacked"
    helper = artifacts.layer(ref1, "helper").digest.split(":")[1]
    assert (blobs / helper).exists() and (store / helper).is_dir()  # the oldest generation has it
    (blobs / ".in-999999-killed.tmp").write_bytes(b"a download killed midway")
    proc = pull("prune", "--cache", str(pull.cache), "--keep", "1", "--json")
    data = json.loads(proc.stdout)
    assert len(data["generations"]) == 2 and data["blobs"] > 0
    assert not (blobs / helper).exists() and not (store / helper).exists()
    demo1 = artifacts.layer(ref3, "demo").digest.split(":")[1]
    assert (blobs / demo1).exists() and (store / demo1).is_dir()
    assert not list(blobs.glob(".in-*"))
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"
    status = json.loads(pull("status", "--cache", str(pull.cache), "--json").stdout)["venvs"]
    assert [len(s["generations"]) for s in status] == [1]
    assert pull.install(ref3)["changed"] is False


def test_zipapp_installs_with_python39(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    py39 = require_python("3.9")
    pyz = build_zipapp(tmp_path / "dist" / "venv-pull.pyz")
    help_ = subprocess.run([py39, pyz, "--help"], capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0 and "rollback" in help_.stdout
    ref = artifacts.write([wheels.demo2], python=str(py39), install_tool="pip")
    env = pull.env()
    env.pop("PYTHONPATH")  # only the zipapp's own copy of venvship
    # pyenv's 3.9 sits where nobody cannot run it: the health check keeps root here.
    proc = subprocess.run(
        [py39, pyz, *pull.argv("install", ref, "--json", "--check-user", "root")[3:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed"] is True
    assert pull.python("import sys, demo; print(sys.version_info[:2], demo.VERSION)") == "(3, 9) 2.0"
