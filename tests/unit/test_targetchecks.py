"""Build-time checks of what would fail only on targets: install pip-args as the install tool's
own parser reads them, and distro packages to symlink that clash with a locked distribution."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tests.needs import needs, require

from venvship.artifact.documents import Wheel
from venvship.builder.layers import Tool
from venvship.builder.targetchecks import check_install_args, check_symlinks, wheel_top_names
from venvship.errors import RecipeError
from venvship.recipe.recipefile import Recipe, SideOptions, load_recipe


def _recipe(tmp_path: Path, **keys: object) -> Recipe:
    path = tmp_path / "demo.toml"
    path.write_text('[venv]\nname = "demo"\nversion = "1"\ninstall-path = "/opt/demo"\npackages = ["six"]\n')
    return dataclasses.replace(load_recipe(path), **keys)  # type: ignore[arg-type]


def _tool(tool_wheels: Path, name: str) -> Tool:
    wheel = next(tool_wheels.glob(f"{name}-*.whl"))
    return Tool(name=name, version=wheel.name.split("-")[1], wheel=wheel)


def _args(recipe: Recipe, *args: str) -> Recipe:
    return dataclasses.replace(recipe, install=SideOptions(pip_args=args))


def test_pip_reads_the_install_args_with_its_own_parser(tmp_path: Path, tool_wheels: Path) -> None:
    recipe, pip = _recipe(tmp_path), _tool(tool_wheels, "pip")
    kw = {"python": sys.executable, "workdir": tmp_path / "w"}
    check_install_args(_args(recipe, "--progress-bar", "off", "-q"), pip, **kw)  # type: ignore[arg-type]
    with pytest.raises(RecipeError) as err:
        check_install_args(_args(recipe, "--progress-bar", "bogus"), pip, **kw)  # type: ignore[arg-type]
    assert str(err.value).startswith(
        f"{recipe.path}: venv.install.pip-args: pip {pip.version} refuses '--progress-bar bogus': "
        "option --progress-bar: invalid choice: 'bogus'"
    )


def test_uv_reads_the_install_args_with_its_own_parser(tmp_path: Path, tool_wheels: Path) -> None:
    recipe, uv = _recipe(tmp_path), _tool(tool_wheels, "uv")
    kw = {"python": sys.executable, "workdir": tmp_path / "w"}
    check_install_args(_args(recipe, "--no-progress", "--link-mode", "copy"), uv, **kw)  # type: ignore[arg-type]
    # Both are on the allow-list, but uv takes only one of them at a time: every target would fail.
    with pytest.raises(RecipeError) as err:
        check_install_args(_args(recipe, "-q", "-v"), uv, **kw)  # type: ignore[arg-type]
    assert str(err.value) == (
        f"{recipe.path}: venv.install.pip-args: uv {uv.version} refuses '-q -v': "
        "the argument '--quiet...' cannot be used with '--verbose...'"
    )


def _wheel(tmp_path: Path, name: str, members: list[str]) -> tuple[Wheel, Path]:
    path = tmp_path / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member in members:
            zf.writestr(member, "")
    return Wheel(name=name, version="1.0", filename=path.name, sha256="0" * 64, size=1), path


def test_top_level_names_of_a_wheel(tmp_path: Path) -> None:
    _, path = _wheel(
        tmp_path,
        "odd",
        ["odd/__init__.py", "odd_mod.py", "_odd.cpython-311-x86_64-linux-gnu.so", "odd-1.0.dist-info/RECORD"],
    )
    assert wheel_top_names(path) == {"odd", "odd_mod", "_odd"}


@needs(shutil.which("dpkg") is not None, "dpkg", fix="run the tests on a Debian-family host")
def test_a_distro_package_clashing_with_the_lock_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dpkg = subprocess.run(["dpkg", "-s", "python3-six"], capture_output=True, check=False)
    require(dpkg.returncode == 0, "the Debian package python3-six", fix="apt-get install python3-six")
    probe = ["/usr/bin/python3", "-c", "import sys; print(sys.version_info[1])"]
    minor = int(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)  # dist-packages'
    recipe = _recipe(tmp_path, symlink_system_packages=("venvship-no-such-package", "python3-six"))
    six = _wheel(tmp_path, "six", ["six.py", "six-1.0.dist-info/RECORD"])
    other = _wheel(tmp_path, "other", ["other/__init__.py"])
    caplog.set_level(logging.WARNING, logger="venvship")
    with pytest.raises(RecipeError) as err:
        check_symlinks(recipe, dict([other, six]), minor=minor)
    assert str(err.value) == (
        f"{recipe.path}: venv.symlink-system-packages: distro package 'python3-six' provides six, "
        "which the locked six 1.0 installs too: drop one of them (the venv cannot hold both)"
    )
    # A package this build host lacks cannot be read: said, not refused.
    assert caplog.messages == [
        f"{recipe.path}: venv.symlink-system-packages: distro package 'venvship-no-such-package' is not "
        "installed on this build host: its Python names are not checked against the lock"
    ]
    check_symlinks(recipe, dict([other]), minor=minor)  # no clash, no error
