"""What root runs (#19): venv-pull attacked through the programs and the surroundings of its Python
children. A wheel that writes the staging venv's interpreter or its ``._pth``, an interpreter path
through a folder another user owns, a ``venv.py`` in root's working directory, a secret in root's
environment that the artifact's health check would see.

Each test fails on the venv-pull before #19: root ran the planted code, or the check saw the secret.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.needs import needs_root

from .conftest import DISTRO_PYTHON, Artifacts, Pull, make_wheel, python_version

NOBODY = 65534


def _drop_box(tmp_path: Path) -> Path:
    """A folder anyone may write, where planted code records the uid it ran as."""
    box = tmp_path / "box"
    box.mkdir()
    box.chmod(0o777)
    return box


def _marker_code(box: Path) -> str:
    """Python that records the uid running it in ``box``, as an attacker's proof of execution."""
    return f"import os\nopen({str(box / 'ran')!r}, 'a').write('%d\\n' % os.getuid())\n"


def _ran_as(box: Path) -> list[int]:
    ran = box / "ran"
    return [int(line) for line in ran.read_text().split()] if ran.exists() else []


def _executable(wheel: Path, member: str) -> Path:
    """Rewrite ``wheel`` with ``member`` marked executable (0755), as a wheel's scripts are."""
    with zipfile.ZipFile(wheel) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            if info.filename == member:
                info.external_attr = (stat.S_IFREG | 0o755) << 16  # pip wants the type bits too
            zf.writestr(info, data)
    return wheel


def _evil_pth(box: Path, evil: str) -> str:
    """A ``._pth`` that puts ``evil`` (holding a ``json.py`` that drops the marker) before the stdlib."""
    minor = python_version(DISTRO_PYTHON)
    stdlib = f"/usr/lib/python{minor}"
    return f"{evil}\n{stdlib}\n{stdlib}/lib-dynload\n"


@needs_root
@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_wheel_planting_python_pth_runs_nothing_as_root(
    artifacts: Artifacts, pull: Pull, tmp_path: Path, tool: str
) -> None:
    # The wheel's scripts land in the staging venv's bin/: bin/python._pth, which Python reads even
    # under -I -S, puts the artifact's own folder (with its json.py) before the stdlib.
    box = _drop_box(tmp_path)
    evil_dir = tmp_path / "evilmods"
    evil_dir.mkdir()
    evil_dir.chmod(0o755)
    (evil_dir / "json.py").write_text(_marker_code(box))
    (evil_dir / "json.py").chmod(0o644)
    wheel = make_wheel(
        tmp_path / "w",
        "pthwheel",
        "1.0",
        extra={"pthwheel-1.0.data/scripts/python._pth": _evil_pth(box, str(evil_dir))},
    )
    ref = artifacts.write([wheel], install_tool=tool, layers=False)
    proc = pull("install", ref, "--from-wheels", ok=False)
    assert 0 not in _ran_as(box)
    # Refused by the import check, run as nobody, which the planted code broke: nothing as root.
    assert proc.returncode == 1, proc.stderr
    assert "venv-pull: error: health check failed (import check, exit 1):" in proc.stderr.splitlines(), (
        proc.stderr
    )


@needs_root
def test_wheel_replacing_bin_python_runs_nothing_as_root(
    artifacts: Artifacts, pull: Pull, tmp_path: Path
) -> None:
    # The wheel's scripts/python replaces the staging venv's bin/python (pip unlinks the link first).
    # pip only: a tool that wrote through the link would overwrite the host's own interpreter.
    box = _drop_box(tmp_path)
    script = f'#!/bin/sh\nid -u >> {box / "ran"}\nexec {DISTRO_PYTHON} "$@"\n'
    wheel = _executable(
        make_wheel(tmp_path / "w", "binwheel", "1.0", extra={"binwheel-1.0.data/scripts/python": script}),
        "binwheel-1.0.data/scripts/python",
    )
    ref = artifacts.write([wheel], install_tool="pip", layers=False)
    proc = pull("install", ref, "--from-wheels", ok=False)
    assert 0 not in _ran_as(box)
    # Refused by the import check, run as nobody, which the planted code broke: nothing as root.
    assert proc.returncode == 1, proc.stderr
    assert "venv-pull: error: health check failed (import check, exit 1):" in proc.stderr.splitlines(), (
        proc.stderr
    )


@needs_root
@pytest.mark.parametrize("how", ["artifact", "--python"])
def test_interpreter_through_a_folder_nobody_owns_is_refused(
    artifacts: Artifacts, pull: Pull, tmp_path: Path, how: str
) -> None:
    # The interpreter's real path is the host's own, but the path it is named by runs through a
    # folder nobody owns, where nobody plants python3._pth: Python reads it beside the path it was
    # started as, so root would import nobody's json.
    box = _drop_box(tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    link = theirs / "python3"
    link.symlink_to(os.path.realpath(DISTRO_PYTHON))
    ref = artifacts.write(
        [make_wheel(tmp_path / "w", "demo", "1.0")],
        python=str(link) if how == "artifact" else DISTRO_PYTHON,
        layer_python=DISTRO_PYTHON,
    )
    # What nobody does in its own folder, once the artifact exists.
    os.lchown(link, NOBODY, NOBODY)
    os.chown(theirs, NOBODY, NOBODY)
    (theirs / "json.py").write_text(_marker_code(box))
    (theirs / "python3._pth").write_text(_evil_pth(box, str(theirs)))
    extra = ["--python", str(link)] if how == "--python" else []
    proc = pull("install", ref, *extra, ok=False)
    assert 0 not in _ran_as(box)
    assert proc.returncode != 0
    assert "must be owned by root" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.lexists(pull.dest)


@needs_root
@pytest.mark.parametrize("tool", ["layers", "pip"])
def test_venv_py_in_roots_working_directory_is_not_imported(
    artifacts: Artifacts, pull: Pull, tmp_path: Path, tool: str
) -> None:
    # Root runs venv-pull from a folder another user fills (/tmp, a home): `python -m venv` would
    # import that user's venv.py.
    box = _drop_box(tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name in ("venv.py", "virtualenv.py", "json.py"):
        (cwd / name).write_text(_marker_code(box))
    ref = artifacts.write(
        [make_wheel(tmp_path / "w", "demo", "1.0")], install_tool="uv" if tool == "layers" else tool
    )
    extra = ["--from-wheels"] if tool != "layers" else []
    # venv-pull itself started as its installed launcher would: -P keeps this cwd off its own sys.path.
    argv = [sys.executable, "-P", *pull.argv("install", ref, *extra)[1:]]
    proc = subprocess.run(argv, env=pull.env(), cwd=cwd, capture_output=True, text=True, timeout=180)
    assert _ran_as(box) == []
    assert proc.returncode == 0, proc.stderr
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"


def test_health_check_gets_no_secret_of_the_caller(artifacts: Artifacts, pull: Pull, tmp_path: Path) -> None:
    # The check runs the artifact's code: it gets PATH, LANG, LC_*, TZ and the recipe's env only.
    out = _drop_box(tmp_path) / "env"
    ref = artifacts.write([make_wheel(tmp_path / "w", "demo", "1.0")], env={"VENVSHIP_TEST_RECIPE": "kept"})
    pull.install(
        ref,
        "--check-command",
        f"env > {out}",
        env={"VENVSHIP_TEST_SECRET": "s3cret", "AWS_SECRET_ACCESS_KEY": "k3y", "LC_TIME": "C"},
    )
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert "s3cret" not in out.read_text() and "k3y" not in out.read_text()
    assert env["VENVSHIP_TEST_RECIPE"] == "kept"
    assert env["LC_TIME"] == "C"
    assert env["PATH"].split(":")[0].endswith("/bin")  # the new generation's bin/ first
    assert "PYTHONPATH" not in env and "PIP_FIND_LINKS" not in env
