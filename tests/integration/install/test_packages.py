"""``venv-pull status DEST --packages``: what a live venv holds, in ``pip freeze`` form, read from
its dist-info folders without following links out of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import Artifacts, Pull, Wheels

LISTED = "import importlib.metadata as m; print('\\n'.join(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))"


def test_status_packages_lists_what_the_live_venv_holds(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    pull.install(artifacts.write([wheels.demo1, wheels.helper]))
    out = pull("status", str(pull.dest), "--packages").stdout.splitlines()
    assert "demo==1.0" in out and "helper==1.0" in out
    # The same list the venv's own Python finds (importlib.metadata, what pip freeze reads).
    assert out == sorted(pull.python(LISTED).splitlines(), key=str.lower)
    data = json.loads(pull("status", str(pull.dest), "--packages", "--json").stdout)
    assert data["dest"] == str(pull.dest) and data["generation"] == os.readlink(pull.dest).rsplit("/", 1)[1]
    assert {"name": "demo", "version": "1.0"} in data["packages"]

    # A dist-info folder that is a link out of the venv is not the venv's: not listed.
    outside = tmp_path / "elsewhere" / "evil-9.9.dist-info"
    outside.mkdir(parents=True)
    (outside / "METADATA").write_text("Metadata-Version: 2.1\nName: evil\nVersion: 9.9\n")
    [site] = Path(os.path.realpath(pull.dest)).glob("lib/python3*/site-packages")
    (site / "evil-9.9.dist-info").symlink_to(outside)
    assert pull("status", str(pull.dest), "--packages").stdout.splitlines() == out


def test_status_packages_needs_a_venv_of_venv_pull(pull: Pull, tmp_path: Path) -> None:
    proc = pull("status", "--packages", ok=False)
    assert proc.returncode != 0 and "DEST" in proc.stderr.splitlines()[-1]
    proc = pull("status", str(tmp_path), "--packages", ok=False)
    assert proc.returncode == 1 and "not a venv installed by venv-pull" in proc.stderr
    assert "Traceback" not in proc.stderr
