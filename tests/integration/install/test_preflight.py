"""Preconditions first: everything this host lacks is named, one line each with its fix, before
anything is pulled or made."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from tests.needs import needs, needs_root
from venvship.builder.package import write_to_layout
from venvship.host.info import distro_family
from venvship.oci.layout import Layout

from .conftest import Artifacts, Pull, Wheels, big_wheel, make_config, make_wheel, wheel_of


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("venv-pull: error: ")]


@needs(distro_family() == "debian", "dpkg", fix="run the tests on a Debian-family host")
def test_every_missing_precondition_is_one_line_before_any_pull(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo1], symlink=["venvship-no-such-package"])
    proc = pull("install", ref, "--check-user", "venvship-no-such-user", ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert _errors(proc.stderr) == [
        "venv-pull: error: --check-user venvship-no-such-user: no such user on this host; "
        "create that user, or pass --check-user root",
        "venv-pull: error: distro package 'venvship-no-such-package' is not installed "
        "(symlink-system-packages): install it or add it to [venv.install] distro-packages",
    ]
    assert not list((pull.cache / "blobs" / "sha256").glob("*"))  # nothing was pulled
    assert not os.path.lexists(pull.dest)
    # --check says the same: the run it stands for would fail.
    check = pull("install", ref, "--check-user", "venvship-no-such-user", "--check", ok=False)
    assert _errors(check.stderr) == _errors(proc.stderr)


def test_too_little_space_for_the_cache_is_named_before_the_pull(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, small_fs: Callable[[str], Path], tmp_path: Path
) -> None:
    ref = artifacts.write([big_wheel(tmp_path / "big", "bulk", 1.5)])
    cache = small_fs("2m") / "cache"
    paths = ["--dest", str(pull.dest), "--cache", str(cache), "--facts-dir", str(pull.facts)]
    proc = pull("install", ref, *paths, "--no-distro-packages", defaults=False, ok=False)
    [line] = _errors(proc.stderr)
    assert line.startswith(f"venv-pull: error: {cache}: 2.0 MiB free on its file system, about ")
    assert line.endswith(
        " needed (the blobs to pull, and their files once unpacked, estimated at 3x the compressed "
        "size); free some space, or use --cache or --dest on another file system"
    )
    assert not list((cache / "blobs" / "sha256").glob("*"))


def test_a_python_asked_for_that_is_not_on_the_system_path_is_the_error(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo1])
    proc = pull("install", ref, "--python", "python3.99", ok=False)
    [line] = _errors(proc.stderr)
    assert line.startswith(
        "venv-pull: error: --python python3.99: python 'python3.99' not found on the system PATH"
    )
    assert "missing" not in line  # the artifact's own python is not what failed
    assert not list((pull.cache / "blobs" / "sha256").glob("*"))


def test_a_python_that_fails_its_probe_is_named_without_the_probe_script(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path, host_folder: Path
) -> None:
    ref = artifacts.write([wheels.demo1])
    broken = host_folder / "bin" / "python3.11"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'cannot load the standard library' >&2\nexit 3\n")
    broken.chmod(0o755)
    proc = pull("install", ref, "--python", str(broken), ok=False)
    [line] = _errors(proc.stderr)
    assert line == (
        f"venv-pull: error: --python {broken}: python {broken} failed when asked for its version "
        "(exit code 3): cannot load the standard library"
    )
    assert "import json" not in proc.stderr


@needs_root  # the health check runs as another user only under root
def test_a_python_the_check_user_cannot_run_is_refused_before_the_pull(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path, host_folder: Path
) -> None:
    ref = artifacts.write([wheels.demo1])
    private = host_folder / "private"
    private.mkdir(mode=0o700)
    python = private / "python3.11"
    python.write_bytes(Path(os.path.realpath("/usr/bin/python3")).read_bytes())
    python.chmod(0o755)
    proc = pull("install", ref, "--python", str(python), ok=False)
    [line] = _errors(proc.stderr)
    assert line.startswith(
        f"venv-pull: error: python {python}: the health check's user nobody cannot run it ("
    )
    assert line.endswith("); use an interpreter every user can read, or pass --check-user root")
    assert not list((pull.cache / "blobs" / "sha256").glob("*"))  # nothing was pulled
    assert not os.path.lexists(pull.dest)


def test_too_little_space_at_a_destination_on_another_file_system_is_named_before_the_pull(
    artifacts: Artifacts, pull: Pull, small_fs: Callable[[str], Path], tmp_path: Path
) -> None:
    ref = artifacts.write([big_wheel(tmp_path / "big", "bulk", 1.5)])
    dest = small_fs("2m") / "venvs" / "demo"
    paths = ["--dest", str(dest), "--cache", str(pull.cache), "--facts-dir", str(pull.facts)]
    proc = pull("install", ref, *paths, "--no-distro-packages", defaults=False, ok=False)
    [line] = _errors(proc.stderr)
    assert line.startswith(f"venv-pull: error: {dest.parent}: 2.0 MiB free on its file system, about ")
    assert " needed (the venv's files, estimated at 3x the compressed size); " in line
    assert not list((pull.cache / "blobs" / "sha256").glob("*"))


def test_from_wheels_refuses_a_tool_venv_pull_does_not_pin_before_the_pull(
    wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # An artifact whose recipe pinned another pip than venvship's: its wheel is not one of PINNED.
    other_pip = make_wheel(tmp_path / "tools", "pip", "1.0")
    tool, demo = wheel_of(other_pip), wheel_of(wheels.demo1)
    config = make_config(lock=[demo], tools=[tool], install_tool="pip")
    write_to_layout(
        Layout.create(tmp_path / "oci"), config, {demo.digest: wheels.demo1, tool.digest: other_pip}
    )
    proc = pull("install", f"oci:{tmp_path / 'oci'}:demo:1.0", "--from-wheels", ok=False)
    [line] = _errors(proc.stderr)
    assert line == (
        f"venv-pull: error: artifact demo 1.0: its {tool.filename} (sha256:{tool.sha256}) is not a tool "
        "venv-pull pins; allow it with --allow-tool sha256:<hex> if you trust it"
    )
    assert not list((pull.cache / "blobs" / "sha256").glob("*"))  # nothing was pulled
