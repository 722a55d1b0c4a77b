"""What ``venv-pull`` imports before it knows there is work: a no-op rerun (the common case on a
fleet, every Ansible run) costs mostly its imports (#23), so the steps that write, and the
signature checks a live generation already passed, are imported only when used."""

from __future__ import annotations

import subprocess
import sys

# Modules of the install's later steps (and what only they need), none of which a no-op runs.
LATER = (
    "venvship.install.check",
    "venvship.install.fetch",
    "venvship.install.health",
    "venvship.install.layerinstall",
    "venvship.install.recording",
    "venvship.install.staging",
    "venvship.install.store",
    "venvship.install.switch",
    "venvship.install.wheelinstall",
    "venvship.verify.signature",
    "tarfile",
    "zipfile",
)


def test_venv_pull_starts_without_the_later_steps() -> None:
    code = "import sys, venvship.cli.venv_pull_main; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "venvship.install.installer" in out.split()  # what the install starts from is there
    assert sorted(set(out.split()) & set(LATER)) == []
