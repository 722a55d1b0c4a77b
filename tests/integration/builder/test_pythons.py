"""One recipe built for several interpreters in one run: one manifest per interpreter, all in one
index, each resolved under its own interpreter's markers; a host installs the one its python fits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import RecipeWriter
from tests.needs import require_python
from venvship.artifact.documents import Index, Manifest, VenvConfig
from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.layout import Layout

# One pin per interpreter, as upper-constraints files write them.
MARKED = ['alpha==1.0 ; python_version < "3.10"', 'alpha==1.1 ; python_version >= "3.10"']


def _configs(layout: Layout, ref: str) -> dict[str, VenvConfig]:
    index = Index.from_bytes(layout.read_blob(layout.resolve(ref).digest))
    out = {}
    for entry in index.manifests:
        manifest = Manifest.from_bytes(layout.read_blob(entry.digest))
        config = VenvConfig.from_json(json.loads(layout.read_blob(manifest.config.digest)))
        out[config.python.abi] = config
    return out


def test_one_index_for_two_pythons(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    py39 = require_python("3.9")
    here = sys.executable
    recipe = write_recipe(python=[here, str(py39)], constraints=MARKED)
    out = tmp_path / "oci"
    argv = ["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]
    assert venvship_main.main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # one line per interpreter
    configs = _configs(Layout(out), "demo:1.0")
    abi = "cp{}{}".format(*sys.version_info[:2])
    assert sorted(configs) == sorted(["cp39", abi])
    versions = {key: {w.name: w.version for w in c.lock}["alpha"] for key, c in configs.items()}
    assert versions == {"cp39": "1.0", abi: "1.1"}  # each lock under its own interpreter's markers
    assert configs["cp39"].python.executable == str(py39)

    # A host with both pythons: --python chooses the manifest that fits it.
    dest = tmp_path / "venvs" / "demo"
    install = [
        "install",
        f"oci:{out}:demo:1.0",
        "--dest",
        str(dest),
        "--cache",
        str(tmp_path / "blobcache"),
        "--facts-dir",
        str(tmp_path / "facts"),
        "--no-distro-packages",
        "--check-user",
        "root",  # pyenv's interpreters sit where nobody cannot run them
        "--json",
    ]
    assert venv_pull_main.main([*install, "--python", str(py39)]) == 0
    capsys.readouterr()
    probe = "import sys, alpha; print(sys.version_info[:2], alpha.__version__)"
    got = subprocess.run([dest / "bin" / "python", "-c", probe], capture_output=True, text=True, check=True)
    assert got.stdout.strip() == "(3, 9) 1.0"


def test_build_python_option_adds_interpreters_and_refuses_two_of_one_platform(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write_recipe()
    out = tmp_path / "oci"
    argv = [
        "build",
        str(recipe),
        "--output",
        f"oci:{out}",
        "--cache-dir",
        str(cache),
        "--python",
        sys.executable,
    ]
    assert venvship_main.main(argv) == 1
    line = capsys.readouterr().err.splitlines()[-1]
    assert f"python python3 and {sys.executable} are the same platform here" in line or (
        f"python {sys.executable}" in line and "are the same platform here" in line
    )
