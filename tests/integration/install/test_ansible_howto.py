"""The Ansible how-to's rollback tasks, run by ansible-playbook as the page shows them: a second
play run changes nothing (a rollback run twice would roll forward again)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.needs import needs

from .conftest import SRC, Artifacts, Pull, Wheels

HOWTO = Path(__file__).parents[3] / "docs" / "how-to" / "ansible.md"


def _rollback_tasks() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", HOWTO.read_text(), flags=re.S)
    [tasks] = [b for b in blocks if "Roll the demo venv back" in b]
    return textwrap.dedent(tasks)


def _play(tmp_path: Path, dest: Path) -> Path:
    tasks = textwrap.indent(_rollback_tasks().replace("/opt/venvs/demo-1.0", str(dest)), "    ")
    play = tmp_path / "rollback.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
        '  vars:\n    demo_bad_version: "2.0"\n  tasks:\n'
        f"{tasks}\n"
        "  handlers:\n    - name: Restart demo\n      ansible.builtin.debug:\n        msg: restarted\n"
    )
    return play


def _recap(out: str) -> dict[str, int]:
    line = next(ln for ln in out.splitlines() if ln.startswith("localhost"))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@needs(
    shutil.which("ansible-playbook") is not None,
    "ansible-playbook",
    fix="install the test group (ansible-core)",
)
def test_the_howtos_rollback_task_changes_once_then_reports_ok(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    pull.install(artifacts.write([wheels.demo1], version="1.0"))
    pull.install(artifacts.write([wheels.demo2], version="2.0"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "venv-pull"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m venvship.cli.venv_pull_main "$@"\n')
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(SRC),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    play = _play(tmp_path, pull.dest)
    argv = [
        "ansible-playbook",
        "-i",
        "localhost,",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(play),
    ]

    def run() -> dict[str, int]:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return _recap(proc.stdout)

    first = run()
    assert (first["changed"], first["failed"]) == (1, 0)
    status = json.loads(pull("status", str(pull.dest), "--json").stdout)
    live = next(g for g in status["generations"] if g["generation"] == status["current"])
    assert live["version"] == "1.0"
    second = run()
    assert (second["changed"], second["failed"], second["skipped"]) == (0, 0, 1)
    status_after = json.loads(pull("status", str(pull.dest), "--json").stdout)
    assert status_after["current"] == status["current"]
