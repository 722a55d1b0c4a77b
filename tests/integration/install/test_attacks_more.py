"""More of venv-pull attacked as an intruder would (#10): a layer that inflates in its tar headers,
a store or destination folder an unprivileged user can write, planted state that would make a run
report success without a trust check.

Each test that guards a fix fails on the venv-pull before it.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from tests.hostfacts import site_folder
from tests.needs import needs_root
from venvship.artifact.documents import Fact
from venvship.oci.layout import Layout
from venvship.venvformat.record import hash_field

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels, make_wheel
from .test_layers import _swap_layer

NOBODY = 65534


def _pax_bomb(inflated: int) -> bytes:
    """A tar+gzip layer whose one pax header claims ``inflated`` bytes of zeros (~1000:1 in gzip)."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.size, info.type = inflated, tarfile.XHDTYPE
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [co.compress(info.tobuf(format=tarfile.USTAR_FORMAT))]
    block = b"\0" * (1 << 20)
    parts += [co.compress(block) for _ in range(inflated >> 20)]
    parts.append(co.flush())
    return b"".join(parts)


def _install_measured(pull: Pull, ref: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``venv-pull install ref``; return the process and its peak memory (MiB)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(proc.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(proc.returncode)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *pull.argv("install", ref)],
        env=pull.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, int(proc.stdout.strip() or 0) >> 10


def test_a_layer_that_inflates_in_a_tar_header_is_refused_within_its_limit(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    good = artifacts.write([wheels.demo1])
    first = pull.install(good)
    # 512 MiB of header from ~0.5 MiB of layer: tarfile reads a pax header whole, into memory,
    # before venv-pull sees the member; a layer's limit (64 times its size) must bound that too.
    ref = _swap_layer(artifacts, good, "demo", _pax_bomb(512 << 20))
    proc, peak_mib = _install_measured(pull, ref)
    assert proc.returncode == 1, proc.stderr
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    assert "layer demo-1.0.venv.tar.gz" in line and "unpacks to more than" in line, line
    assert peak_mib < 256, f"venv-pull peaked at {peak_mib} MiB unpacking a 0.5 MiB layer"
    assert os.readlink(pull.dest).endswith(first["generation"])
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"


def _plant_entry(store: Path, digest: str, files: dict[str, bytes]) -> None:
    """Plant a store entry for layer ``digest`` whose files.json matches its (hostile) files."""
    entry = store / digest.split(":")[1]
    listing = {}
    for rel, data in files.items():
        path = entry / "tree" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        listing[rel] = [hash_field(data), len(data), 0o644]
    (entry / "files.json").write_text(json.dumps({"files": listing, "folders": []}))


def _chown_tree(path: Path, uid: int) -> None:
    for item in [path, *path.rglob("*")]:
        os.chown(item, uid, uid, follow_symlinks=False)


@needs_root
@pytest.mark.parametrize("folder", ["unpacked", "blobs"])
def test_a_store_folder_another_user_owns_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, folder: str
) -> None:
    ref = artifacts.write([wheels.demo1])
    layer = artifacts.layer(ref, "demo")
    layers = artifacts.config(ref).layers
    assert layers is not None
    # The cache is root's, but one of its folders is nobody's (made by hand, restored from a
    # backup, chowned by mistake): nobody plants an unpacked "layer" whose files.json matches.
    pull.cache.mkdir()
    store = pull.cache / "unpacked"
    store.mkdir()
    if folder == "unpacked":  # without the fix, the live venv ran nobody's file (owned by nobody)
        _plant_entry(store, layer.digest, {f"{layers.site}/demo/__init__.py": b"VERSION = 'pwned'\n"})
    (pull.cache / "blobs" / "sha256").mkdir(parents=True)
    _chown_tree(pull.cache / folder, NOBODY)
    proc = pull("install", ref, ok=False)
    assert proc.returncode == 1, proc.stdout
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    assert f"{pull.cache / folder} (owner nobody, mode 0755)" in line, line
    assert not os.path.lexists(pull.dest)


@needs_root
def test_planted_state_in_a_folder_another_user_owns_is_no_reason_to_report_success(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo1])
    top = Layout(artifacts.root).resolve("demo:1.0").digest
    # The destination's folder is nobody's: venv-pull refuses to install there, but nobody can
    # plant a "live generation" whose state names the reference's digest (and any signer).
    parent = pull.dest.parent
    for generation, previous in (("feedfacefeed", "0wned0wned00"), ("0wned0wned00", "")):
        planted = parent / ".demo.venvship" / generation
        (planted / "bin").mkdir(parents=True)
        (planted / "bin" / "python").symlink_to("/bin/sh")
        state = {"generation": generation, "digest": top, "ref_digest": top, "reference": ref}
        state["previous_generation"] = previous
        (planted / "venvship-state.json").write_text(json.dumps(state))
    pull.dest.symlink_to(".demo.venvship/feedfacefeed")
    _chown_tree(parent, NOBODY)
    for extra in ([], ["--check"]):
        proc = pull("install", ref, *extra, ok=False)
        assert proc.returncode == 1, proc.stdout
        assert "the destination's folder must be owned by root" in proc.stderr, proc.stderr
    # Nor to switch to a generation nobody planted there.
    proc = pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts), ok=False)
    assert proc.returncode == 1 and "the destination's folder must be owned by root" in proc.stderr
    assert os.readlink(pull.dest) == ".demo.venvship/feedfacefeed"


def test_a_large_layer_whose_gzip_trailer_claims_little_is_not_read_into_memory(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    good = artifacts.write([wheels.demo1])
    first = pull.install(good)
    # 192 MiB of blob that say (in the gzip trailer's size field) they inflate to 1 KiB.
    blob = gzip.compress(b"")[:10] + os.urandom(192 << 20) + (1024).to_bytes(4, "little")
    ref = _swap_layer(artifacts, good, "demo", blob)
    proc, peak_mib = _install_measured(pull, ref)
    assert proc.returncode == 1, proc.stderr
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    assert "layer demo-1.0.venv.tar.gz" in line, line
    assert peak_mib < 128, f"venv-pull peaked at {peak_mib} MiB unpacking a 192 MiB layer"
    assert os.readlink(pull.dest).endswith(first["generation"])


def test_a_large_file_in_a_layer_is_written_a_piece_at_a_time(
    tmp_path: Path, artifacts: Artifacts, pull: Pull
) -> None:
    # 60 MiB of one file that compresses to little: a layer venv-pull streams (its blob is
    # small, its trailer says it is large). Read whole, the file took twice that (tarfile joins its reads).
    big = make_wheel(tmp_path / "w", "bigdata", "1.0", extra={"bigdata/blob.bin": bytes(60 << 20)})
    proc, peak_mib = _install_measured(pull, artifacts.write([big]))
    assert proc.returncode == 0, proc.stderr
    assert (pull.dest / site_folder(DISTRO_PYTHON) / "bigdata" / "blob.bin").stat().st_size == 60 << 20
    assert peak_mib < 80, f"venv-pull peaked at {peak_mib} MiB writing a 60 MiB file"


def test_a_state_that_names_another_folder_never_gets_it_removed(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    first = pull.install(artifacts.write([wheels.demo1]))
    root = pull.dest.parent / ".demo.venvship"
    victim = pull.tmp / "victim"
    (victim / "keep").mkdir(parents=True)
    # A state (copied, restored, or written by whoever could) whose generation leaves its folder
    # and is older than any: prune, and every install's prune, would remove what it names.
    planted = root / "0ldgen0ldgen"
    planted.mkdir()
    state = json.loads((root / first["generation"] / "venvship-state.json").read_text())
    state.update(generation="0ldgen0ldgen/../../../victim", created=0, adopted=False)
    (root / ".0ldgen0ldgen").mkdir()  # where prune renames it to first (".NAME.doomed")
    (planted / "venvship-state.json").write_text(json.dumps(state))
    (planted / "bin").mkdir()
    (planted / "bin" / "python").symlink_to("/usr/bin/python3")
    pull.install(artifacts.write([wheels.demo2], version="2.0"), "--keep", "1")
    pull("prune", "--cache", str(pull.cache), "--keep", "1")
    assert (victim / "keep").is_dir()
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"


@needs_root
def test_a_symlink_another_user_owns_on_the_way_to_the_destination_is_refused(
    tmp_path: Path, artifacts: Artifacts, pull: Pull, wheels: Wheels
) -> None:
    """A link in a shared folder (as /tmp) that nobody owns could be pointed elsewhere between the
    check and the use."""
    ref = artifacts.write([wheels.demo1])
    target = tmp_path / "real"
    target.mkdir()
    shared = tmp_path / "shared"  # this test's own /tmp: world-writable and sticky
    shared.mkdir()
    shared.chmod(0o1777)
    link = shared / "link"
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)
    try:
        own = ["--cache", str(pull.cache), "--facts-dir", str(pull.facts), "--no-distro-packages"]
        proc = pull("install", ref, "--dest", str(link / "demo"), *own, ok=False, defaults=False)
        assert proc.returncode == 1
        assert "a symlink on the way to" in proc.stderr.strip().splitlines()[-1]
        assert not (target / "demo").exists()
        os.lchown(link, 0, 0)  # the same link, root's: followed as before
        pull("install", ref, "--dest", str(link / "demo"), *own, defaults=False)
    finally:
        link.unlink()


@needs_root
def test_a_facts_folder_another_user_owns_neither_feeds_facts_nor_moves_the_roles_venv(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    # What the original role left (a plain venv), and a facts folder nobody owns, with values
    # planted for the adopted generation to keep and a rollback to write back as root.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", pull.dest], check=True, timeout=60)
    pull.facts.mkdir(parents=True, exist_ok=True)
    (pull.facts / "demo.fact").write_text("[demo]\nvenv_tag = planted\n")
    _chown_tree(pull.facts, NOBODY)
    ref = artifacts.write([wheels.demo1], facts=[Fact("demo", "demo", "venv_tag", "1.0")])
    proc = pull("install", ref, "--adopt", ok=False)
    assert proc.returncode == 1 and "the facts folder must be owned by root" in proc.stderr, proc.stderr
    assert pull.dest.is_dir() and not pull.dest.is_symlink()  # the role's venv stays where it was
    assert not list((pull.dest.parent / ".demo.venvship").glob("original-*"))  # nothing adopted


def test_a_venv_venv_pull_did_not_make_is_adopted_only_when_asked(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", pull.dest], check=True, timeout=60)
    ref = artifacts.write([wheels.demo1])
    proc = pull("install", ref, ok=False)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert str(pull.dest) in line and "pass --adopt" in line
    assert pull.dest.is_dir() and not pull.dest.is_symlink()
    assert not list((pull.dest.parent / ".demo.venvship").glob("original-*"))


@needs_root
def test_a_venv_another_user_owns_is_never_adopted(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    # The role-era venv is the user's: adopted as it is, its state would be theirs to rewrite.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", pull.dest], check=True, timeout=60)
    _chown_tree(pull.dest, NOBODY)
    proc = pull("install", artifacts.write([wheels.demo1]), "--adopt", ok=False)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert str(pull.dest) in line and "another user owns or can write" in line
    assert pull.dest.is_dir() and not pull.dest.is_symlink()
    assert not list((pull.dest.parent / ".demo.venvship").glob("original-*"))


@needs_root
def test_a_generation_another_user_owns_never_claims_the_next_release(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # A user's venv adopted by an earlier venv-pull: its folder and state file are theirs.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", pull.dest], check=True, timeout=60)
    pull.install(artifacts.write([wheels.demo1]), "--adopt")
    [adopted] = (pull.dest.parent / ".demo.venvship").glob("original-*")
    _chown_tree(adopted, NOBODY)
    # The user learns the next release's digest (anyone can read a registry) and claims it.
    ref2 = artifacts.write([wheels.demo2], version="2.0")
    elsewhere = pull.install(
        ref2,
        "--dest",
        str(tmp_path / "o" / "demo"),
        "--cache",
        str(pull.cache),
        "--facts-dir",
        str(tmp_path / "of"),
        "--no-distro-packages",
        defaults=False,
    )
    state_file = adopted / "venvship-state.json"
    state = json.loads(state_file.read_text())
    state.update(digest=elsewhere["digest"], adopted=False)
    state_file.write_text(json.dumps(state))  # written as root for brevity, owned by the user as theirs
    os.chown(state_file, NOBODY, NOBODY)
    result = pull.install(ref2)
    assert result["generation"] != adopted.name
    assert not os.readlink(pull.dest).endswith(adopted.name)
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"
