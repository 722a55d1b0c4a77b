"""The role with no build host (#21): `venv_wheel_build_enable` is false when `venv_build_group` has
no hosts, and the target builds for itself with `venvship install`, as the original role then
builds on each target. This host is the target (local connection); every path points into a
scratch folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import check_user_args
from tests.integration.conftest import LocalIndex
from tests.needs import needs_root

from .scenario import BIN, RESOURCES, ROLES, changed_tasks, recap


@needs_root
def test_without_a_build_host_the_target_builds_for_itself(
    tmp_path: Path, local_index: LocalIndex, shared_builders: Path
) -> None:
    cache = tmp_path / "build-cache"
    cache.mkdir(mode=0o700)
    (cache / "builders").symlink_to(shared_builders)
    upper = tmp_path / "upper-constraints.txt"
    upper.write_text("beta==2.0\n")
    dest = tmp_path / "venvs" / "keystone-31.0.0"
    restarts = tmp_path / "restarts"
    facts = tmp_path / "facts"
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "venv_tag": "31.0.0",
        "keystone_bin": f"{dest}/bin",
        "requirements_git_url": str(upper),
        "keystone_pip_packages": ["alpha==1.0"],
        "venv_pip_build_args": " ".join(local_index.pip_args()),
        "venv_build_requirements": ["setuptools", "wheel"],
        "venvship_command": str(BIN / "venvship"),
        "venvship_cache_dir": str(cache),
        "venvship_distro_packages": False,
        "venv_local_recipe_path": str(tmp_path / "recipes"),
        "venv_pull_install_options": [
            "--cache",
            str(tmp_path / "cache"),
            "--facts-dir",
            str(facts),
            *check_user_args(),
        ],
        "keystone_test_restart_log": str(restarts),
    }
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps({"repo_all": {"hosts": {}}, "keystone_all": {"hosts": {"keystone1": host_vars}}})
    )
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": f"{ROLES}{os.pathsep}{RESOURCES}",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        # The local connection passes this on: the run log goes here, not to /var/log.
        "VENVSHIP_LOG": str(tmp_path / "venv-pull.log"),
    }

    def converge() -> str:
        argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(RESOURCES / "install.yml")]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        return proc.stdout

    first = converge()
    assert "TASK [python_venv_build : Build and install the venv (venvship install)]" in first
    assert "Build the artifact (venvship build)" not in first
    assert recap(first)["keystone1"]["changed"] >= 1
    assert restarts.read_text().count("restarted") == 1
    assert dest.is_symlink()
    assert "venv_tag = 31.0.0" in (facts / "openstack_ansible.fact").read_text()
    again = converge()
    assert recap(again)["keystone1"]["changed"] == 0, changed_tasks(again)
    assert restarts.read_text().count("restarted") == 1
