"""Every command through its installed console script, as a user runs it: ``venvship`` and
``venv-pull`` from the environment's ``bin/``, in processes of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import RecipeWriter
from tests.integration.registry._support import RegistryServer

BIN = Path(sys.executable).parent
ROLE_VARS = Path(__file__).resolve().parents[2] / "resources" / "role-vars" / "keystone.yml"

pytestmark = pytest.mark.registry


def script(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path}: the {name} console script is not installed next to {sys.executable}")
    return path


def run(*argv: object, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package only
    proc = subprocess.run(
        [str(a) for a in argv], env=env, input=stdin, capture_output=True, text=True, timeout=600
    )
    if ok and proc.returncode != 0:
        raise AssertionError(f"{argv[0]} {argv[1]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_venvship_commands_through_the_console_script(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, open_registry: RegistryServer
) -> None:
    venvship = script("venvship")
    recipe = write_recipe()
    layout = tmp_path / "oci"
    built = json.loads(
        run(venvship, "build", recipe, "--output", f"oci:{layout}", "--cache-dir", cache, "--json").stdout
    )["recipes"]
    assert [b["status"] for b in built] == ["built"]
    view = json.loads(run(venvship, "inspect", f"oci:{layout}:demo:1.0", "--json").stdout)
    assert {p["name"] for p in view["platforms"][0]["packages"]} >= {"alpha", "beta"}
    assert ": no changes" in run(venvship, "diff", f"oci:{layout}:demo:1.0", f"oci:{layout}:demo:1.0").stdout
    host = open_registry.host
    assert "published" in run(venvship, "publish", f"oci:{layout}", f"{host}/scripts", "--insecure").stdout
    assert "index sha256:" in run(venvship, "index", f"{host}/scripts/demo:1.0", "--insecure").stdout
    out = tmp_path / "recipes" / "keystone.toml"
    run(venvship, "import-role", ROLE_VARS, "-o", out)
    assert 'name = "keystone"' in out.read_text()
    bad = run(venvship, "build", tmp_path / "no-such.toml", ok=False)
    assert (
        bad.returncode == 1
        and bad.stderr.startswith("venvship: error: ")
        and len(bad.stderr.splitlines()) == 1
    )


def test_venv_pull_commands_through_the_console_script(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path
) -> None:
    venvship, venv_pull = script("venvship"), script("venv-pull")
    layout = tmp_path / "oci"
    for version in ("1.0", "2.0"):
        run(
            venvship,
            "build",
            write_recipe(version=version),
            "--output",
            f"oci:{layout}",
            "--cache-dir",
            cache,
        )
    dest, blobs, facts = tmp_path / "venvs" / "demo", tmp_path / "blobcache", tmp_path / "facts"
    common = ["--dest", dest, "--cache", blobs, "--facts-dir", facts, "--no-distro-packages", "--json"]
    first = json.loads(run(venv_pull, "install", f"oci:{layout}:demo:1.0", *common).stdout)
    second = json.loads(run(venv_pull, "install", f"oci:{layout}:demo:2.0", *common).stdout)
    assert first["changed"] and second["previous_digest"] == first["digest"]
    assert dest.name in run(venv_pull, "status", dest, "--cache", blobs).stdout
    assert " 0 drifted" in run(venv_pull, "verify", dest, "--cache", blobs).stdout
    rolled = json.loads(run(venv_pull, "rollback", dest, "--facts-dir", facts, "--json").stdout)
    assert rolled["generation"] == first["generation"]
    pruned = json.loads(run(venv_pull, "prune", "--cache", blobs, "--keep", "1", "--json").stdout)
    assert len(pruned["generations"]) == 1


def test_venvship_install_through_the_console_script(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path
) -> None:
    venvship = script("venvship")
    dest = tmp_path / "venvs" / "demo"
    argv = [venvship, "install", write_recipe(), "--dest", dest, "--cache", tmp_path / "blobcache"]
    argv += ["--facts-dir", tmp_path / "facts", "--no-distro-packages", "--cache-dir", cache, "--json"]
    assert json.loads(run(*argv).stdout)["changed"] is True
    assert json.loads(run(*argv).stdout)["changed"] is False
    proc = subprocess.run([dest / "bin" / "python", "-c", "import alpha"], capture_output=True, timeout=60)
    assert proc.returncode == 0
