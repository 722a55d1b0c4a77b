"""The role installs the usual ways (#21): `ansible-galaxy role install` from the tarball `nox -s role`
makes, and a plain roles path; either way a playbook written for the original finds it by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import require

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
SITE = REPO / "tests" / "resources" / "role" / "site.yml"


def _ansible(argv: list[str], *, roles_path: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": roles_path,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def galaxy() -> None:
    require((BIN / "ansible-galaxy").exists(), "ansible-galaxy", fix="install the test group (ansible-core)")


def test_the_tarball_installs_with_ansible_galaxy_and_resolves_by_name(galaxy: None, tmp_path: Path) -> None:
    tarball = tmp_path / "python_venv_build.tar.gz"
    # noxfile.py's ROLE_TARBALL, writing here instead of dist/.
    subprocess.run(
        ["tar", "-czf", str(tarball), "-C", "ansible/roles", "python_venv_build"],
        cwd=REPO,
        check=True,
        timeout=60,
    )
    requirements = tmp_path / "requirements.yml"
    requirements.write_text(f"- src: file://{tarball}\n  name: python_venv_build\n")
    roles = tmp_path / "roles"
    _ansible(
        [str(BIN / "ansible-galaxy"), "role", "install", "-p", str(roles), "-r", str(requirements)],
        roles_path=str(roles),
        tmp_path=tmp_path,
    )
    assert (roles / "python_venv_build" / "tasks" / "main.yml").exists()
    # os_keystone's `import_role: name: python_venv_build` resolves to the installed copy.
    service_roles = str(SITE.parent)
    out = _ansible(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "--syntax-check", str(SITE)],
        roles_path=f"{roles}{os.pathsep}{service_roles}",
        tmp_path=tmp_path,
    )
    assert "playbook: " in out.stdout


def test_a_roles_path_to_the_repository_resolves_it_by_name(galaxy: None, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[keystone_all]\nlocalhost\n")
    out = _ansible(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "--list-tasks", str(SITE)],
        roles_path=f"{REPO / 'ansible' / 'roles'}{os.pathsep}{SITE.parent}",
        tmp_path=tmp_path,
    )
    assert "python_venv_build : Fail if the build cannot run as asked" in out.stdout, out.stdout
