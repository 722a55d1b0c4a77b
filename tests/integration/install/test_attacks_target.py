"""The target side attacked once more (#19), after its rules were written down: an interpreter in a
folder whose parent others may write, a decoy site-packages that blinds the no-op check and
``status --packages``, symlinks that ``verify`` would follow to tell what exists outside the venv,
and a layout directory whose blobs never end.

Each test fails on the venv-pull before its fix.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.needs import needs, needs_root
from venvship.install.zipapp import build_zipapp
from venvship.oci.layout import Layout

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels, make_wheel, python_version
from .test_attacks_exec import _drop_box, _marker_code, _ran_as
from .test_attacks_more import NOBODY, _chown_tree
from .test_layers import _member, _swap_layer, _tar

ROOT = os.geteuid() == 0


def _as_nobody(*argv: str) -> None:
    """Run ``argv`` as the unprivileged user, as the attacker would."""
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv], check=True)


@needs_root
def test_an_interpreter_below_a_folder_others_may_write_is_refused(
    artifacts: Artifacts, pull: Pull, tmp_path: Path
) -> None:
    # The interpreter's own folder is root's, but the one above is world-writable and sticky, as
    # /tmp is: Python reads pyvenv.cfg there (and looks for its stdlib in every folder above), so
    # a local user's "home" would hand root that user's json.py.
    box = _drop_box(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    folder = shared / "py"
    folder.mkdir(mode=0o755)
    minor = python_version(DISTRO_PYTHON)
    python = folder / f"python{minor}"
    shutil.copy2(os.path.realpath(DISTRO_PYTHON), python)
    ref = artifacts.write(
        [make_wheel(tmp_path / "w", "demo", "1.0")], python=str(python), layer_python=DISTRO_PYTHON
    )
    # What nobody does once the artifact exists: a stdlib of their own, with their json.py.
    evil = shared / "evil"
    _as_nobody("mkdir", "-p", str(evil / "bin"), str(evil / "lib" / f"python{minor}"))
    stdlib = Path(f"/usr/lib/python{minor}")
    links = [str(p) for p in stdlib.iterdir() if p.name not in ("json", "venv", "site-packages")]
    _as_nobody("ln", "-s", *links, str(evil / "lib" / f"python{minor}"))
    for module in ("json", "venv"):
        code = _marker_code(box).replace("'", "'\\''")
        _as_nobody("sh", "-c", f"printf '%s' '{code}' > {evil}/lib/python{minor}/{module}.py")
    _as_nobody("sh", "-c", f"echo 'home = {evil}/bin' > {shared}/pyvenv.cfg")
    proc = pull("install", ref, ok=False)
    assert 0 not in _ran_as(box)
    assert proc.returncode != 0
    assert "must be owned by root and not writable by others" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.lexists(pull.dest)


def _with_decoy(artifacts: Artifacts, ref: str, files: dict[str, bytes]) -> str:
    """Return ``ref`` again with demo's layer also shipping ``files`` in a decoy
    ``lib/python3.1/site-packages``, which sorts before the venv's real one."""
    layer = artifacts.layer(ref, "demo")
    with gzip.open(Layout(artifacts.root).blob_path(layer.digest)) as gz:
        data = gz.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]
    members += [_member(f"lib/python3.1/site-packages/{name}", text) for name, text in files.items()]
    return _swap_layer(artifacts, ref, "demo", _tar(members))


def test_a_decoy_site_packages_does_not_hide_a_deleted_distribution(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    # The decoy holds a copy of every dist-info folder: a no-op check or a package list that takes
    # a glob's first lib/python3*/site-packages reads the decoy, not the venv's own.
    info = "helper-1.0.dist-info"
    ref = _with_decoy(
        artifacts,
        artifacts.write([wheels.demo1, wheels.helper]),
        {
            f"{info}/METADATA": b"Metadata-Version: 2.1\nName: helper\nVersion: 1.0\n",
            "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        },
    )
    first = pull.install(ref)
    assert pull.install(ref)["changed"] is False
    venv = pull.dest.parent / ".demo.venvship" / str(first["generation"])
    [site] = [p for p in venv.glob("lib/python3*/site-packages") if "python3.1/" not in f"{p}/"]
    shutil.rmtree(site / "helper")
    shutil.rmtree(site / info)
    listed = pull("status", str(pull.dest), "--packages").stdout.splitlines()
    assert "helper==1.0" not in listed, listed
    again = pull.install(ref)
    assert again["changed"] is True  # made again, never "unchanged" with a distribution gone
    assert pull.python("import helper; print(helper.VERSION)") == "1.0"


@needs_root
def test_verify_never_tells_whether_a_path_only_root_sees_exists(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # A destination the user controls; root runs verify on it. Two links of the user's, one to a
    # root-only file that exists and one to a name that does not: if root follows them to tell a
    # dangling one, its report tells the user what root's folder holds.
    first = pull.install(artifacts.write([wheels.demo1]))
    generation = pull.dest.parent / ".demo.venvship" / str(first["generation"])
    secret = tmp_path / "root-only"
    secret.mkdir(mode=0o700)
    (secret / "id_ed25519").write_text("key\n")
    _chown_tree(generation, NOBODY)
    _as_nobody("ln", "-s", str(secret / "id_ed25519"), str(generation / "probe-a"))
    _as_nobody("ln", "-s", str(secret / "id_rsa"), str(generation / "probe-b"))
    proc = pull("verify", str(pull.dest), "--json", ok=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    drifted = [str(d) for d in json.loads(proc.stdout)["drifted"]]
    about_a = [d.replace("probe-a", "probe-?") for d in drifted if "probe-a" in d]
    about_b = [d.replace("probe-b", "probe-?") for d in drifted if "probe-b" in d]
    assert about_a == about_b, drifted  # the same words whether the target exists or not
    assert about_a == [f"symlink another user made: {generation / 'probe-?'} (not followed)"]


@pytest.mark.parametrize("blob", ["index", "layer"])
def test_a_layout_blob_that_never_ends_is_one_error_line(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, blob: str
) -> None:
    # Whoever writes the layout directory makes a blob a FIFO (a symlink to /dev/zero works the
    # same way, and eats memory): reading it blocks for ever, under the install's locks for a layer.
    ref = artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    digest = layout.resolve("demo:1.0").digest if blob == "index" else artifacts.layer(ref, "demo").digest
    path = layout.blob_path(digest)
    path.unlink()
    os.mkfifo(path)
    try:
        proc = subprocess.run(
            pull.argv("install", ref), env=pull.env(), capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("venv-pull still reads the FIFO after 60 s")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"venv-pull: error: {artifacts.root}/blobs/sha256/{digest.split(':')[1]}: not a regular file"
    ], proc.stderr
    assert not os.path.lexists(pull.dest)


@needs_root
@needs(shutil.which("dpkg") is not None, "dpkg", fix="run the tests on a Debian-family host")
def test_a_package_database_a_user_names_links_nothing_into_the_venv(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # Root's shell kept a user's environment (su without -): their DPKG_ADMINDIR names a package
    # database of theirs, whose python3-six "installs" a six.py in their own folder. dpkg -L run
    # with root's whole environment reads it, and root links that file into the service's venv.
    alice = tmp_path / "alice"
    alice.mkdir()
    os.chown(alice, NOBODY, NOBODY)
    admin, module = alice / "dpkg", alice / "lib" / "python3" / "dist-packages" / "six.py"
    _as_nobody("mkdir", "-p", str(admin / "info"), str(module.parent))
    status = "Package: python3-six\nStatus: install ok installed\nVersion: 9\nArchitecture: all\n"
    status += "Maintainer: a <a@a>\nDescription: six\n\n"
    for path, text in ((admin / "status", status), (admin / "info" / "python3-six.list", f"{module}\n")):
        _as_nobody("sh", "-c", f"printf '%s' '{text}' > {path}")
    _as_nobody("sh", "-c", f"echo 'VERSION = \"alice\"' > {module}")
    ref = artifacts.write([wheels.demo1], symlink=["python3-six"])
    pull("install", ref, ok=False, env={"DPKG_ADMINDIR": str(admin)})
    if os.path.lexists(pull.dest):
        [site] = pull.dest.glob("lib/python3.*/site-packages")
        linked = [os.readlink(p) for p in site.iterdir() if p.is_symlink()]
        assert not [t for t in linked if t.startswith(str(alice))], linked


@needs_root
def test_the_zipapp_run_as_a_program_imports_nothing_from_the_callers_pythonpath(tmp_path: Path) -> None:
    # Root starts venv-pull.pyz from a shell that kept a user's environment (su without -): their
    # PYTHONPATH would come before the stdlib, and venv-pull itself would import their json.py.
    box = _drop_box(tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    for module in ("json", "argparse"):
        _as_nobody("sh", "-c", f"printf '%s' \"$0\" > {theirs}/{module}.py", _marker_code(box))
    pyz = build_zipapp(tmp_path / "dist" / "venv-pull.pyz")
    env = {**os.environ, "PYTHONPATH": str(theirs)}
    proc = subprocess.run(
        [str(pyz), "--version"], env=env, cwd="/", capture_output=True, text=True, timeout=60
    )
    assert _ran_as(box) == []
    assert proc.returncode == 0 and proc.stdout.startswith("venv-pull "), proc.stderr
