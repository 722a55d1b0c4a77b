"""Every platform for real (#15): an arm64 build made inside an arm64 Debian 12 root (qemu-user),
its C extension compiled there, merged with this host's amd64 build into one index in a real
registry; the root's own /usr/bin/python3 runs venv-pull.pyz, which installs the arm64 venv, and
this host installing the same index tag gets the amd64 manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import LocalIndex
from tests.integration.registry._support import RegistryServer
from tests.integration.registry.conftest import open_registry  # noqa: F401  (a fixture)
from tests.needs import require_program
from tests.pythons import find_python
from venvship.artifact.documents import ANN_PYTHON, Index
from venvship.cli import venv_pull_main, venvship_main
from venvship.install.zipapp import build_zipapp
from venvship.oci.registry import RegistryClient

from .conftest import run_in_root, venvship_in_root

pytestmark = pytest.mark.registry

RECIPE = """\
[venv]
name = "demo"
version = "1.0"
install-path = "/opt/venvs/demo"
packages = ["alpha"]
build-requirements = ["setuptools", "wheel"]
install-tool = "pip"

[venv.build]
pip-args = ["--no-index", "--find-links", "{index}"]
"""


def _in_root(root: Path, *argv: str, timeout: float = 1800) -> str:
    proc = run_in_root(root, list(argv), timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} failed in the arm64 root:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_an_arm64_build_and_install_beside_amd64_in_one_index(
    arm64_root: Path,
    local_index: LocalIndex,
    open_registry: RegistryServer,  # noqa: F811
    tmp_path: Path,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_program("gcc", package="gcc")  # the amd64 half builds here
    host = open_registry.host
    # -- the amd64 half, built here and published ------------------------------------------------
    recipe = tmp_path / "demo.toml"
    recipe.write_text(RECIPE.format(index=local_index.dist))
    amd64 = ["build", str(recipe), "--output", f"{host}/multi", "--insecure", "--cache-dir", str(cache)]
    py39 = find_python("3.9")  # a second Python where this host has one: three manifests in the index
    assert venvship_main.main([*amd64, *(["--python", str(py39)] if py39 else [])]) == 0

    # -- the arm64 half, built inside the root with venvship installed in a venv there -------------
    root = arm64_root
    venvship_in_root(root, "/opt/vs")
    shutil.copytree(local_index.dist, root / "opt/index")
    (root / "opt/demo.toml").write_text(RECIPE.format(index="/opt/index"))
    built = _in_root(
        root,
        "/opt/vs/bin/venvship",
        "build",
        "/opt/demo.toml",
        "--output",
        f"{host}/multi",
        "--insecure",
        "--no-distro-packages",
        "--cache-dir",
        "/opt/cache",
        "--json",
    )
    [arm] = json.loads(built)["recipes"]
    assert arm["ref"] == "demo:1.0-debian-12-arm64-cp311" and arm["status"] == "built"

    # -- one index over both --------------------------------------------------------------------
    assert venvship_main.main(["index", f"{host}/multi/demo:1.0", "--insecure"]) == 0
    client = RegistryClient(host, insecure=True)
    _, raw, _ = client.get_manifest("multi/demo", "1.0")
    arch = {e.digest: (e.platform or {}).get("architecture", "") for e in Index.from_bytes(raw).manifests}
    python = {e.digest: e.annotations.get(ANN_PYTHON) for e in Index.from_bytes(raw).manifests}
    assert sorted(zip(arch.values(), python.values())) == sorted(
        [("amd64", "cp311"), ("arm64", "cp311"), *([("amd64", "cp39")] if py39 else [])]
    )
    platforms = {arch[d]: d for d in arch if python[d] == "cp311"}

    # -- the root's own python installs the arm64 venv with the zipapp, and runs its C extension -----
    pyz = build_zipapp(root / "opt/venv-pull.pyz")
    out = _in_root(
        root,
        "/usr/bin/python3",
        "/" + pyz.relative_to(root).as_posix(),
        "install",
        f"{host}/multi/demo:1.0",
        "--insecure",
        "--cache",
        "/var/cache/venvship",
        "--facts-dir",
        "/opt/facts",
        "--no-distro-packages",
        "--json",
    )
    result = json.loads(out)
    assert result["digest"] == platforms["arm64"] and result["dest"] == "/opt/venvs/demo"
    probe = "import platform, beta._speed as s; print(platform.machine(), s.add(2, 3))"
    assert _in_root(root, "/opt/venvs/demo/bin/python", "-c", probe).split() == ["aarch64", "5"]

    # -- this host, the same index tag: the amd64 manifest ---------------------------------------
    dest = tmp_path / "venvs" / "demo"
    install = ["install", f"{host}/multi/demo:1.0", "--insecure", "--dest", str(dest), "--json"]
    install += ["--cache", str(tmp_path / "blobcache"), "--facts-dir", str(tmp_path / "facts")]
    capsys.readouterr()
    assert venv_pull_main.main([*install, "--no-distro-packages"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == platforms["amd64"]
    got = subprocess.run(
        [dest / "bin" / "python", "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert got.stdout.split() == ["x86_64", "5"]
