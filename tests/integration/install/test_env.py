"""The install's surroundings: no network, the child environment, recipe pip-args, venv creators."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import needs

from .conftest import Artifacts, Pull, Wheels


def _can_unshare_net() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@needs(
    _can_unshare_net(),
    "unshare -n (root or user namespaces)",
    fix="run the tests as root; apt-get install util-linux",
)
@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_install_needs_no_network(artifacts: Artifacts, wheels: Wheels, pull: Pull, tool: str) -> None:
    # In a network namespace of its own the installer has no route anywhere: nothing is downloaded.
    ref = artifacts.write([wheels.demo2, wheels.helper], install_tool=tool)
    proc = subprocess.run(
        ["unshare", "-n", *pull.argv("install", ref, "--json")],
        env=pull.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert pull.python("import demo, helper; print(demo.VERSION)") == "2.0"
    # activate shows the destination's name, as after `python -m venv DEST`, not the staging folder's.
    activate = (pull.dest / "bin" / "activate").read_text()
    assert "(demo) " in activate and ".partial" not in activate


def _check_env(
    pull: Pull, ref: str, out: Path, *args: str, env: dict[str, str] | None = None
) -> dict[str, str]:
    """Install ``ref`` with a check command that records the environment the health check gets
    (it runs as nobody: the record goes into a folder nobody may write)."""
    out.parent.mkdir(exist_ok=True)
    out.parent.chmod(0o777)
    pull.install(ref, "--check-command", f"env > {out}; id -un >> {out}", *args, env=env)
    return dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)


def test_child_environment(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(key, raising=False)
    recipe_env = {"VENVSHIP_TEST_RECIPE": "from the recipe", "SSL_CERT_FILE": "/recipe/ca.pem"}
    ref = artifacts.write([wheels.demo1], env=recipe_env)
    env = _check_env(pull, ref, tmp_path / "out" / "env1")
    if os.geteuid() == 0:
        assert (tmp_path / "out" / "env1").read_text().splitlines()[-1] == "nobody"
        assert env["HOME"] == "/nonexistent"
    # The check runs the artifact's code: the recipe's env, and of the caller's only PATH, LANG,
    # LC_* and TZ (#19); no CA default, no pip settings (Pull sets PIP_FIND_LINKS on purpose).
    assert env["SSL_CERT_FILE"] == "/recipe/ca.pem"
    assert env["VENVSHIP_TEST_RECIPE"] == "from the recipe"
    assert "REQUESTS_CA_BUNDLE" not in env and "PIP_FIND_LINKS" not in env and "PIP_CONFIG_FILE" not in env
    env = _check_env(
        pull, ref, tmp_path / "out" / "env2", "--rebuild", env={"REQUESTS_CA_BUNDLE": "/caller/ca.pem"}
    )
    assert "REQUESTS_CA_BUNDLE" not in env


@pytest.mark.parametrize(("tool", "arg"), [("pip", "--progress-bar=off"), ("uv", "--link-mode=copy")])
def test_recipe_pip_args_reach_the_installer(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tool: str, arg: str
) -> None:
    # Observable in the installer's command line, which `venv-pull -v` logs before running it.
    ref = artifacts.write([wheels.demo1], install_tool=tool, pip_args=[arg])
    argv = [*pull.argv("install", ref), "--from-wheels"]
    proc = subprocess.run(
        [*argv[:3], "-v", *argv[3:]], env=pull.env(), capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    ran = [line for line in proc.stderr.splitlines() if "running: " in line and " install " in line]
    assert any(f" {arg} " in line for line in ran), ran


@pytest.mark.parametrize(("tool", "arg"), [("pip", "--compile"), ("uv", "--compile-bytecode")])
def test_artifact_pip_args_venv_pull_owns_are_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tool: str, arg: str
) -> None:
    # Until #10 these reached pip or uv as given; bytecode is venv-pull's (`--no-compile`).
    ref = artifacts.write([wheels.demo1], install_tool=tool, pip_args=[arg])
    proc = pull("install", ref, ok=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"venv-pull: error: {ref} config.install.pip_args[0]: '{arg}' is not allowed in install pip-args: "
        "venv-pull compiles bytecode itself; use `venv-pull install --no-compile` to skip it"
    ]
    assert not os.path.lexists(pull.dest)


def test_virtualenv_where_venv_is_missing(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, host_folder: Path
) -> None:
    # A fake at the one seam we cannot reach otherwise: an interpreter whose venv module is
    # missing (as on hosts without python3-venv's stdlib part). The wrapper refuses `-m venv`
    # and runs the real interpreter for everything else, virtualenv included.
    wrapper = host_folder / "novenv" / "python3"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -m venv "*) echo "No module named venv" >&2; exit 1;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    # The layers are made with a whole interpreter; the health check runs as root here, as the
    # interpreter sits where nobody cannot run it (--check-user root).
    ref = artifacts.write([wheels.demo2], python=str(wrapper), layer_python=sys.executable)
    pull.install(ref, "--check-user", "root")
    assert "virtualenv = " in (pull.dest / "pyvenv.cfg").read_text()
    assert not (pull.dest / "bin" / "__pycache__").exists()  # bytecode for site-packages only, as pip
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"
    assert pull.python("import importlib.util as u; print(u.find_spec('pip'))") == "None"
    scripts = [p for p in (pull.dest / "bin").iterdir() if p.is_file() and not p.is_symlink()]
    assert scripts and not [p for p in scripts if ".partial" in p.read_text(errors="replace")]


def _installed(package: str) -> bool:
    if not shutil.which("dpkg-query"):
        return False
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package], capture_output=True, text=True
    )
    return proc.stdout == "installed"


@needs(_installed("python3-six"), "the Debian package python3-six", fix="apt-get install python3-six")
def test_runtime_distro_packages_present(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    # Present already: the step runs (no --no-distro-packages) and has nothing to install.
    ref = artifacts.write([wheels.demo1], distro_packages=["python3-six"])
    args = ["--dest", str(pull.dest), "--cache", str(pull.cache), "--facts-dir", str(pull.facts), "--json"]
    proc = pull("install", ref, *args, defaults=False)
    assert '"changed": true' in proc.stdout
