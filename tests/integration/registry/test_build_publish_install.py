"""The whole chain through a real registry: build → publish → index → venv-pull install."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import RecipeWriter
from tests.integration.registry._support import RegistryServer
from tests.servers import dead_port
from venvship.cli import venv_pull_main, venvship_main


def test_build_to_registry_index_and_install(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    cache: Path,
    open_registry: RegistryServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = open_registry.host
    recipe = write_recipe()
    build = ["build", str(recipe), "--output", f"{host}/fleet", "--insecure", "--cache-dir", str(cache)]
    assert venvship_main.main(build) == 0
    assert f"published {host}/fleet/demo:1.0-debian" in capsys.readouterr().out
    # --json stays one JSON document, naming what went where.
    assert venvship_main.main([*build, "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["recipes"]
    assert entry["status"] == "unchanged"
    assert entry["published"] == f"{host}/fleet/{entry['ref']}"
    assert venvship_main.main(["index", f"{host}/fleet/demo:1.0", "--insecure"]) == 0
    capsys.readouterr()
    # `venvship list` names every tag of the repository as a reference to install or inspect.
    assert venvship_main.main(["list", f"{host}/fleet/demo", "--insecure"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{host}/fleet/demo:1.0", f"{host}/fleet/{entry['ref']}"]
    # Publishing the same content again uploads nothing.
    assert venvship_main.main(["publish", f"oci:{cache / 'staging'}", f"{host}/fleet", "--insecure"]) == 0
    assert "unchanged" in capsys.readouterr().out

    dest = tmp_path / "venvs" / "demo"
    argv = [
        "install",
        f"{host}/fleet/demo:1.0",
        "--insecure",
        "--dest",
        str(dest),
        "--cache",
        str(tmp_path / "blobcache"),
        "--facts-dir",
        str(tmp_path / "facts"),
        "--no-distro-packages",
        "--json",
    ]
    assert venv_pull_main.main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["changed"] is True and first["packages"] == 2
    out = subprocess.run(
        [dest / "bin" / "python", "-c", "import alpha, beta._speed as s; print(s.add(2, 3))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == "5"
    assert venv_pull_main.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["changed"] is False and again["digest"] == first["digest"]


def test_a_build_to_a_registry_writes_the_index_tag_and_a_missing_tag_says_what_to_run(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    cache: Path,
    open_registry: RegistryServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = open_registry.host
    build = [
        "build",
        str(write_recipe()),
        "--output",
        f"{host}/fleet",
        "--insecure",
        "--cache-dir",
        str(cache),
    ]
    assert venvship_main.main(build) == 0
    out = capsys.readouterr().out
    # No `venvship index` needed: the index tag NAME:VERSION is there, as with a layout output.
    assert venvship_main.main(["list", f"{host}/fleet/demo", "--insecure", "--json"]) == 0
    refs = {x["ref"]: x for x in json.loads(capsys.readouterr().out)["refs"]}
    assert f"{host}/fleet/demo:1.0" in refs
    assert f"{host}/fleet/demo:1.0: index sha256:" in out
    # A namespace, or a mistyped name, lists nothing: that is an error line, not a silent exit 0.
    for wrong in (f"{host}/fleet", f"{host}/fleet/dmeo"):
        assert venvship_main.main(["list", wrong, "--insecure"]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.splitlines() == [
            f"venvship: error: {wrong}: no such repository, or it has no tags; name one artifact's "
            "repository, HOST[:PORT]/NAMESPACE/NAME"
        ]
    # A tag that is not there is a 404 with what to run, not a bare one.
    argv = ["install", f"{host}/fleet/demo:2.0", "--insecure", "--dest", str(tmp_path / "d")]
    argv += ["--cache", str(tmp_path / "c"), "--facts-dir", str(tmp_path / "f"), "--no-distro-packages"]
    assert venv_pull_main.main(argv) == 1
    err = capsys.readouterr().err
    assert "not found (404)" in err and f"venvship list {host}/fleet/demo" in err
    assert f"venvship index {host}/fleet/demo:VERSION" in err


def test_an_unreachable_registry_stops_the_build_before_any_work(
    write_recipe: RecipeWriter, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with dead_port() as dead:  # nothing answers there
        argv = [
            "build",
            str(write_recipe()),
            "--output",
            f"{dead}/fleet",
            "--insecure",
            "--cache-dir",
            str(cache),
        ]
        assert venvship_main.main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("venvship: error: ") and "127.0.0.1" in err[-1]
    assert not [line for line in err if "resolving" in line or "builder venv" in line]
