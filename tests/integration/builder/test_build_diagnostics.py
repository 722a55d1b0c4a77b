"""What a build says when it cannot go on (an unreachable index, a conflict, a full disk) and what it
warns about that targets would meet later (another interpreter, an install tool they refuse)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import sys
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from tests.factories import make_project, make_sdist
from tests.integration.conftest import LocalIndex, RecipeWriter
from venvship.builder.pins import INSTALL_TOOLS, versions_for
from venvship.builder.recipebuild import BuildOptions, build_recipe
from venvship.cli.venvship_main import main
from venvship.oci.layout import Layout
from venvship.recipe.recipefile import load_recipe

PIP = versions_for("{}.{}".format(*sys.version_info[:2]), INSTALL_TOOLS)["pip"]


def _recipe(folder: Path, *, packages: list[str], pip_args: list[str], extra: str = "") -> Path:
    path = folder / "recipes" / "demo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '[venv]\nname = "demo"\nversion = "1.0"\ninstall-path = "/opt/venvs/demo"\n'
        f'packages = {json.dumps(packages)}\nbuild-requirements = ["setuptools", "wheel"]\n{extra}'
        f"[venv.build]\npip-args = {json.dumps(pip_args)}\n"
    )
    return path


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_index_is_reported_as_such_not_as_a_missing_package(
    tmp_path: Path, local_index: LocalIndex, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    index = f"http://127.0.0.1:{port}/simple"
    # The tools come from the find-links folder; the package only the dead index could have.
    pip_args = ["--index-url", index, "--find-links", str(local_index.dist), "--retries", "0"]
    recipe = _recipe(tmp_path, packages=["omega"], pip_args=pip_args)
    out = tmp_path / "oci"
    assert main(["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if line.startswith("venvship: error: "))
    assert first.startswith(f"venvship: error: {recipe}: cannot reach the package index")
    assert f"{index}/omega/: connection error" in err
    assert "Traceback" not in err


def test_a_conflict_names_who_asked_for_what_and_no_temporary_file(
    tmp_path: Path, local_index: LocalIndex, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tmp_path / "dist"
    make_sdist(make_project(tmp_path / "src", "pa", "1.0", deps=["pb==1.0"]), dist)
    for version in ("1.0", "2.0"):
        make_sdist(make_project(tmp_path / "src", "pb", version), dist)
    pip_args = [*local_index.pip_args(), "--find-links", str(dist)]
    recipe = _recipe(tmp_path, packages=["pa", "pb==2.0"], pip_args=pip_args)
    out = tmp_path / "oci"
    assert main(["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    assert f"venvship: error: {recipe}: venv.packages: cannot resolve" in err
    assert "Cannot install pa and pb==2.0" in err
    assert "The conflict is caused by:" in err
    assert "The user requested pb==2.0" in err
    assert "pa 1.0 depends on pb==1.0" in err
    assert "requirements.txt" not in err


def test_a_full_disk_while_making_the_builder_venv_says_so(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    small_fs: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = small_fs("4m") / "cache"  # room for the venv, not for the pip that ensurepip unpacks
    recipe = write_recipe()
    out = tmp_path / "oci"
    assert main(["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    [line] = [ln for ln in err.splitlines() if ln.startswith("venvship: error: ")]
    assert line.startswith(f"venvship: error: {cache}: no space left on device (")
    assert line.endswith("; free some space and run again")
    assert "ensurepip" not in err


@pytest.mark.may_skip("it needs the tests to run on an interpreter other than /usr/bin/python3")
def test_a_python_name_that_finds_another_interpreter_than_the_targets_is_warned_about(
    write_recipe: RecipeWriter, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A build host whose PATH finds a python3 of its own first (pyenv, a CI image's), while targets
    # take /usr/bin/python3 from the system PATH.
    own = tmp_path / "pyenv" / "bin"
    own.mkdir(parents=True)
    (own / "python3").symlink_to(sys.executable)
    if os.path.realpath(sys.executable) == os.path.realpath("/usr/bin/python3"):
        pytest.skip("the tests run on the system's python3 itself")
    recipe = write_recipe()
    out = tmp_path / "oci"
    argv = ["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]
    path = f"{own}{os.pathsep}{os.environ['PATH']}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", path)
        assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{recipe}: venv.python: python3 is {own / 'python3'} (Python " in err
    assert "but targets take the one on the system PATH, which here is /usr/bin/python3 (Python " in err
    assert 'set venv.python = "/usr/bin/python3"' in err


def _reversioned(wheel: Path, version: str, out: Path) -> Path:
    """Return a copy of the wheel ``wheel`` that calls itself ``version``: the same code, another
    release as far as pip and venv-pull can tell (another file, another sha256)."""
    name, old = wheel.name.split("-")[:2]
    target = out / wheel.name.replace(f"-{old}-", f"-{version}-")
    out.mkdir(parents=True, exist_ok=True)
    records = []
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            member = item.filename.replace(f"{name}-{old}.dist-info/", f"{name}-{version}.dist-info/")
            data = src.read(item)
            if member.endswith(".dist-info/METADATA"):
                data = data.replace(f"\nVersion: {old}\n".encode(), f"\nVersion: {version}\n".encode())
            if member.endswith(".dist-info/RECORD"):
                record = member
                continue
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{member},sha256={digest},{len(data)}\n")
            dst.writestr(member, data)
        dst.writestr(record, "".join(records) + f"{record},,\n")
    return target


def test_an_install_tool_venv_pull_does_not_pin_is_warned_about_at_build(
    tmp_path: Path, local_index: LocalIndex, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pip = next(local_index.dist.glob(f"pip-{PIP}-*.whl"))
    other = _reversioned(pip, "26.2.99", tmp_path / "other-pip")
    pip_args = [*local_index.pip_args(), "--find-links", str(other.parent)]
    extra = 'global-constraints = ["pip==26.2.99"]\n'
    recipe = _recipe(tmp_path, packages=["alpha"], pip_args=pip_args, extra=extra)
    out = tmp_path / "oci"
    assert main(["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]) == 0
    err = capsys.readouterr().err
    sha = hashlib.sha256(other.read_bytes()).hexdigest()
    assert (
        f"{recipe}: venv.install-tool: artifact demo 1.0: its {other.name} (sha256:{sha}) is not a tool "
        "venv-pull pins; allow it with --allow-tool sha256:<hex> if you trust it; targets installing it "
        "with --from-wheels refuse it without that option"
    ) in err


def test_distro_package_state_latest_upgrades_nothing_on_the_build_host(
    tmp_path: Path, write_recipe: RecipeWriter, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="venvship")
    recipe = load_recipe(write_recipe(distro_package_state="latest"))
    assert recipe.distro_package_state == "latest"  # still carried to the targets
    options = BuildOptions(cache=cache, check=True)  # says what the build would run, runs nothing
    result = build_recipe(recipe, output=Layout.create(tmp_path / "oci"), options=options)
    assert result.status == "outdated"
    assert "upgrade" not in caplog.text and "distro-package-state = latest" not in caplog.text
