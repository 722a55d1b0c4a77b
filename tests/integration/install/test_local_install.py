"""``venvship install RECIPE``: build on this host into its blob cache and install from there.

Real pip, real git, real builder venvs and the tests' own tiny packages (one by git SHA).
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import LocalIndex, RecipeWriter
from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.layout import Layout

from .conftest import tree_snapshot

FACTS = '\n[[venv.facts]]\nsection = "demo"\noption = "venv_tag"\nvalue = "1.0"\n'
# Build and runtime distro packages nobody has: --no-distro-packages must leave them alone.
ABSENT_DEBS = 'distro-packages = ["venvship-test-absent"]\n\n[venv.install]\ndistro-packages = ["venvship-test-absent"]\n'


class Host:
    """Per-test paths and the two CLIs run in-process with them."""

    def __init__(self, tmp: Path, build_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.dest = tmp / "venvs" / "demo"
        self.blobs = tmp / "blobs"
        self.facts = tmp / "facts"
        self.build_cache = build_cache
        self.capsys = capsys

    def paths(self) -> list[str]:
        return ["--dest", str(self.dest), "--cache", str(self.blobs), "--facts-dir", str(self.facts)]

    def install(self, recipe: Path, *args: str) -> str:
        self.capsys.readouterr()
        argv = ["install", str(recipe), *self.paths(), "--cache-dir", str(self.build_cache), *args]
        code = venvship_main.main(argv)
        out, err = self.capsys.readouterr()
        assert code == 0, err
        return out

    def install_json(self, recipe: Path, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.install(recipe, "--json", *args))
        return data

    def pull(self, *argv: str) -> str:
        self.capsys.readouterr()
        code = venv_pull_main.main(list(argv))
        out, err = self.capsys.readouterr()
        assert code == 0, err
        return out

    def python(self, code: str) -> str:
        return subprocess.run(
            [str(self.dest / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()

    def generations(self) -> list[str]:
        return sorted(p.name for p in (self.dest.parent / ".demo.venvship").iterdir() if p.name[0] != ".")

    def snapshot(self) -> dict[str, tuple[float, int]]:
        return tree_snapshot(self.dest.parent, self.blobs, self.facts)


@pytest.fixture
def host(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> Host:
    return Host(tmp_path / "host", cache, capsys)


def test_build_and_install_here_then_noop_change_and_rebuild(
    host: Host, write_recipe: RecipeWriter, local_index: LocalIndex
) -> None:
    git_line = f"{local_index.git_url}@{local_index.git_sha}#egg=gamma"
    recipe = write_recipe(packages=["alpha", git_line], extra=FACTS)

    first = host.install_json(recipe)
    assert first["changed"] is True and first["previous_digest"] == ""
    assert first["dest"] == str(host.dest) and first["packages"] == 3
    assert first["generation"] == first["digest"][7:19]
    # The C extension was compiled here and the git package built from its SHA.
    assert host.python("import alpha, beta._speed, gamma; print(alpha.__version__, gamma.__version__)") == (
        "1.1 3.0.dev4"
    )
    assert host.python("import beta._speed; print(beta._speed.add(2, 3))") == "5"
    facts = configparser.ConfigParser()
    facts.read(host.facts / "openstack_ansible.fact")
    assert facts["demo"]["venv_tag"] == "1.0"
    assert facts["demo"]["venvship_digest"] == first["digest"]
    status = json.loads(host.pull("status", str(host.dest), "--cache", str(host.blobs), "--json"))
    assert [g["digest"] for g in status["generations"]] == [first["digest"]]
    # The artifact sits in the blob cache layout under NAME:VERSION, and venv-pull reading it
    # from there agrees that this venv is that artifact (same installer, same JSON shape).
    assert "demo:1.0" in Layout.open(host.blobs).refs()
    noop = {**first, "changed": False, "facts_written": False}
    noop.pop("bytecode", None)  # reported only by a run that compiled a generation
    pulled = json.loads(host.pull("install", f"oci:{host.blobs}:demo:1.0", *host.paths(), "--json"))
    assert pulled == noop

    before = host.snapshot()
    time.sleep(0.05)
    out = host.install(recipe)
    assert out.splitlines() == [f"{host.dest}: unchanged ({first['digest']}, 3 packages)"]
    again = host.install_json(recipe)
    assert again == noop
    assert host.install_json(recipe, "--check") == noop
    assert host.snapshot() == before  # no blob, ref, venv or fact written

    # A changed recipe: --check builds nothing and writes nothing, and says what it cannot know yet.
    write_recipe(packages=["alpha", git_line], extra=ABSENT_DEBS + FACTS)
    check = host.install_json(recipe, "--check")
    assert check["changed"] is True and check["check"] is True
    assert check["digest"] == "" and check["previous_digest"] == first["digest"]
    assert host.snapshot() == before

    second = host.install_json(recipe, "--no-distro-packages")
    assert second["changed"] is True
    assert second["digest"] != first["digest"] and second["previous_digest"] == first["digest"]
    assert host.generations() == sorted([first["generation"], second["generation"]])

    rebuilt = host.install_json(recipe, "--no-distro-packages", "--rebuild", "--keep", "1")
    assert rebuilt["changed"] is True and rebuilt["digest"] == second["digest"]
    assert rebuilt["generation"] != second["generation"]
    assert host.generations() == [rebuilt["generation"]]
    assert os.readlink(host.dest).endswith(rebuilt["generation"])
    assert host.python("import gamma; print(gamma.__version__)") == "3.0.dev4"


def test_bad_recipe_is_one_error_line_and_writes_nothing(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text(
        '[venv]\nname = "demo"\nversion = "1.0"\ninstall-path = "/opt/demo"\npackages = ["a"]\npakages = []\n'
    )
    assert venvship_main.main(["install", str(recipe), *host.paths()]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"venvship: error: {recipe}: venv.pakages") and len(err.splitlines()) == 1
    assert not host.blobs.exists() and not host.dest.parent.exists() and not host.facts.exists()
    assert venvship_main.main(["install", str(recipe), "--keep", "0"]) == 2
    assert "argument --keep: must be at least 1" in capsys.readouterr().err
