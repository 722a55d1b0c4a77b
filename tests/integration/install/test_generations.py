"""Generations over time: state files, --keep, the blob cache on upgrade, rollback to an adopted venv."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from venvship.artifact.documents import Fact
from venvship.install.zipapp import build_zipapp
from venvship.oci.layout import Layout

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels, wheel_of


def _generations(pull: Pull) -> list[str]:
    return sorted(
        p.name for p in (pull.dest.parent / ".demo.venvship").iterdir() if not p.name.startswith(".")
    )


def test_state_file_of_a_generation(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    start = time.time()
    ref = artifacts.write([wheels.demo1, wheels.helper])
    result = pull.install(ref)
    path = pull.dest.parent / ".demo.venvship" / result["generation"] / "venvship-state.json"
    state = json.loads(path.read_text())
    assert state["digest"] == result["digest"] and state["reference"] == ref
    assert state["ref_digest"] == Layout(artifacts.root).resolve("demo:1.0").digest
    assert state["name"] == "demo" and state["version"] == "1.0"
    assert state["lock"] == ["demo==1.0", "helper==1.0"]
    assert start - 1 <= state["created"] <= time.time()
    assert (
        set(state["tools"]) == {"installer", "venvship", "python"} and state["tools"]["installer"] == "layers"
    )
    assert artifacts.layer(ref, "helper").digest in state["blobs"] and result["digest"] in state["blobs"]
    assert wheel_of(wheels.helper).digest not in state["blobs"]  # wheels are not pulled to unpack layers
    site = next((path.parent / "lib").glob("python3*/site-packages"))
    assert sorted(state["dist_infos"]) == sorted(p.name for p in site.glob("*.dist-info"))
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(path.parent.glob(".venvship-state.json.*"))  # the atomic write left no temp file


def test_keep_two_generations_by_default(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    first = pull.install(artifacts.write([wheels.demo1]))
    second = pull.install(artifacts.write([wheels.demo2], version="2.0"))
    assert _generations(pull) == sorted([first["generation"], second["generation"]])
    third = pull.install(artifacts.write([wheels.demo1, wheels.helper], version="3.0"))
    assert _generations(pull) == sorted([second["generation"], third["generation"]])


def test_upgrade_reads_only_missing_blobs(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    pull.install(artifacts.write([wheels.demo1, wheels.helper]))
    ref2 = artifacts.write([wheels.demo2, wheels.helper], version="2.0")
    # The source loses every blob the cache already holds: the upgrade must not need them.
    source = Layout(artifacts.root)
    source.blob_path(artifacts.layer(ref2, "helper").digest).unlink()
    result = pull.install(ref2)
    assert result["changed"] is True
    assert pull.python("import demo, helper; print(demo.VERSION)") == "2.0"


def test_rollback_to_the_adopted_directory(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    # What the original role left: a venv made in place, a plain directory.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", pull.dest], check=True, timeout=60)
    (pull.dest / "marker").write_text("made by the original role")
    # …and its facts: the recipe's venv_tag, but not its venv_python.
    pull.facts.mkdir(parents=True, exist_ok=True)
    (pull.facts / "demo.fact").write_text("[demo]\nvenv_tag = role-0.9\nother = kept\n")

    def facts(version: str) -> list[Fact]:
        return [Fact("demo", "demo", "venv_tag", version), Fact("demo", "demo", "venv_python", "3")]

    pull.install(artifacts.write([wheels.demo1], facts=facts("1.0")), "--keep", "1", "--adopt")
    pull.install(artifacts.write([wheels.demo2], version="2.0", facts=facts("2.0")), "--keep", "1")
    adopted = [g for g in _generations(pull) if g.startswith("original-")]
    assert len(adopted) == 1  # never pruned, whatever --keep says
    # 1.0 was pruned: the generation before 2.0 still on disk is the adopted one.
    pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts))
    assert os.readlink(pull.dest).endswith(adopted[0])
    assert (pull.dest / "marker").read_text() == "made by the original role"
    assert pull.python("import sys; print(sys.prefix)") == str(pull.dest)
    # The facts say what they said of it before venv-pull came, not what 2.0 says of itself.
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(pull.facts / "demo.fact")
    got = {k: parser["demo"][k] for k in ("venv_tag", "venv_python", "other", "venvship_digest")}
    assert got == {"venv_tag": "role-0.9", "venv_python": "", "other": "kept", "venvship_digest": ""}


def test_verify_reports_missing_files(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    pull.install(artifacts.write([wheels.demo2, wheels.helper]))
    site = next(pull.dest.glob("lib/python3*/site-packages"))
    (site / "helper" / "__init__.py").unlink()
    proc = pull("verify", str(pull.dest), ok=False)
    assert proc.returncode == 1
    live_site = pull.dest.parent / os.readlink(pull.dest) / site.relative_to(pull.dest)
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("1 drifted")
    assert lines[1:] == [f"missing: {live_site / 'helper' / '__init__.py'}"]


def test_zipapp_with_the_distro_python(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    pyz = build_zipapp(tmp_path / "dist" / "venv-pull.pyz")
    ref = artifacts.write([wheels.demo2], python=DISTRO_PYTHON)
    env = pull.env()
    env.pop("PYTHONPATH")  # only the zipapp's own copy of venvship
    proc = subprocess.run(
        [DISTRO_PYTHON, pyz, *pull.argv("install", ref, "--json")[3:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed"] is True
    assert pull.python("import sys, demo; print(sys.base_prefix, demo.VERSION)") == "/usr 2.0"


def test_prune_after_a_rollback_keeps_the_live_one_first(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    """The order prune keeps generations in: the live one, the one it names as previous, the newest."""
    first = pull.install(artifacts.write([wheels.demo1]), "--keep", "3")
    second = pull.install(artifacts.write([wheels.demo2], version="2.0"), "--keep", "3")
    third = pull.install(artifacts.write([wheels.demo1, wheels.helper], version="3.0"), "--keep", "3")
    pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts))  # live: 2.0, which names 1.0
    root = pull.dest.parent / ".demo.venvship"

    def kept() -> set[str]:
        return {p.name for p in root.iterdir() if not p.name.startswith(".")}

    assert kept() == {first["generation"], second["generation"], third["generation"]}
    data = json.loads(pull("prune", "--cache", str(pull.cache), "--keep", "2", "--json").stdout)
    assert data["generations"] == [f"{pull.dest}: {third['generation']}"]  # the newest, not the previous
    assert kept() == {second["generation"], first["generation"]}
    pull("prune", "--cache", str(pull.cache), "--keep", "1")
    assert kept() == {second["generation"]}  # exactly the live one
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"


_READER = """
import os, sys
dest, stop = sys.argv[1], sys.argv[2]
seen, bad = 0, []
while not os.path.exists(stop):
    try:
        with open(os.path.join(dest, "pyvenv.cfg"), "rb") as fh:
            fh.read(1)
        os.stat(os.path.join(dest, "bin", "python"))
        seen += 1
    except OSError as exc:
        bad.append(repr(exc))
print(seen, len(bad), bad[:3])
"""


def test_a_reader_never_sees_the_destination_missing_or_half_made(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    """The switch is one rename of a symlink: a process that resolves the destination in a loop
    through upgrades and rollbacks always finds a whole venv there."""
    ref1 = artifacts.write([wheels.demo1])
    ref2 = artifacts.write([wheels.demo2], version="2.0")
    pull.install(ref1)
    pull.install(ref2)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(pull.dest), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(6):
            pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts))
            pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts))
        pull.install(ref1, "--rebuild")
        pull.install(ref2)
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    seen, bad = out.split(" ", 1)
    assert int(seen) > 0 and bad.startswith("0 "), out
