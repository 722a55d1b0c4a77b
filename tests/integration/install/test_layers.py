"""Ready-to-run layers as an attacker hands them over: hand-made tar+gzip layers that leave the
venv, hold links or devices, or do not hash to their digest, are refused before anything is
written; a kill in the middle of unpacking converges; layers are reproducible."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.hostfacts import site_folder
from tests.needs import require_program
from venvship.artifact.documents import Descriptor, Index, Manifest, VenvConfig, canonical_json
from venvship.builder.layers import Tool, make_layers
from venvship.builder.package import write_to_layout
from venvship.oci.layout import Layout

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels, wheel_of


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return raw.getvalue()


def _member(name: str, data: bytes = b"x = 1\n", **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    for key, value in kw.items():
        setattr(info, key, value)
    if info.type != tarfile.REGTYPE:
        info.size = 0
    return info, data


def _swap_layer(artifacts: Artifacts, ref: str, name: str, blob: bytes) -> str:
    """Write artifact ``ref`` again as version 6.6.6 with ``name``'s layer replaced by ``blob``
    (its digest and size correct in the config and manifest: only its content is hostile)."""
    layout = Layout(artifacts.root)
    config = artifacts.config(ref)
    assert config.layers is not None
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    layout.put_bytes(blob)
    dists = tuple(
        dataclasses.replace(d, digest=digest, size=len(blob), relocate=()) if d.name == name else d
        for d in config.layers.distributions
    )
    evil = dataclasses.replace(
        config, version="6.6.6", layers=dataclasses.replace(config.layers, distributions=dists)
    )
    files = {d.digest: layout.blob_path(d.digest) for d in dists}
    files.update({w.digest: layout.blob_path(w.digest) for w in (*evil.lock, *evil.tools)})
    write_to_layout(layout, evil, files)
    return f"oci:{artifacts.root}:demo:6.6.6"


# The artifacts' venvs are the distro Python's: their site folder, whichever version it is.
SITE = site_folder(DISTRO_PYTHON)
HOSTILE = {
    "dot-dot": [_member(f"{SITE}/../../../../escaped.py")],
    "symlink out": [_member(f"{SITE}/demo", type=tarfile.SYMTYPE, linkname="/etc")],
    "hard link": [_member(f"{SITE}/x.py", type=tarfile.LNKTYPE, linkname="/etc/passwd")],
    "device": [_member(f"{SITE}/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)],
    "fifo": [_member(f"{SITE}/pipe", type=tarfile.FIFOTYPE)],
    "the venv's own python": [_member("bin/python", b"#!/bin/sh\necho owned\n")],
    "through lib64": [_member(f"lib64/{SITE.removeprefix('lib/')}/x.py")],
    "twice": [_member(f"{SITE}/x.py"), _member(f"{SITE}/x.py")],
    "venv-pull's state file": [_member("venvship-state.json", b"{}")],
    "the facts marker": [_member(".venvship-facts-pending", b"")],
}


@pytest.mark.parametrize("case", sorted([*HOSTILE, "absolute"]))
def test_a_hostile_layer_is_refused_before_anything_is_written(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, case: str
) -> None:
    good = artifacts.write([wheels.demo1])
    first = pull.install(good)
    # An absolute path into this test's own folder (a fixed /tmp path would be every run's).
    members = [_member(f"{pull.tmp}/escaped.py")] if case == "absolute" else HOSTILE[case]
    ref = _swap_layer(artifacts, good, "demo", _tar(members))
    proc = pull("install", ref, ok=False)
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    assert "layer demo-1.0.venv.tar.gz" in line, line
    assert "Traceback" not in proc.stderr
    # Nothing of it anywhere: the live venv as it was, no store entry, no stray file.
    assert os.readlink(pull.dest).endswith(first["generation"])
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"
    layer = artifacts.layer(ref, "demo").digest.split(":")[1]
    store = pull.cache / "unpacked"
    assert not (store / layer).exists() and not [p for p in store.iterdir() if p.name.startswith(".")]
    assert not list(pull.tmp.rglob("escaped.py"))
    assert not [p for p in pull.dest.parent.glob(".demo.venvship/*") if p.name.endswith(".partial")]


def test_a_cached_layer_that_no_longer_hashes_to_its_digest_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo1, wheels.helper])
    layer = artifacts.layer(ref, "helper")
    # The cache claims the blob (right size, wrong bytes): only hashing it again finds out.
    blob = pull.cache / "blobs" / "sha256" / layer.digest.split(":")[1]
    blob.parent.mkdir(parents=True)
    (pull.cache / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (pull.cache / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    blob.write_bytes(b"\0" * layer.size)
    proc = pull("install", ref, ok=False)
    assert proc.returncode == 1
    assert f"layer helper-1.0.venv.tar.gz ({layer.digest}): the cached blob hashes to" in proc.stderr
    assert not os.path.lexists(pull.dest)
    assert not (pull.cache / "unpacked" / layer.digest.split(":")[1]).exists()


def test_kill_9_while_unpacking_then_rerun_converges(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo2, wheels.helper])
    env = pull.env({"VENVSHIP_TEST_PAUSE_AT": "unpacking", "VENVSHIP_TEST_PAUSE_SECONDS": "3600"})
    proc = subprocess.Popen(pull.argv("install", ref), env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if "paused at unpacking" in line or time.monotonic() > deadline:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert not os.path.lexists(pull.dest)
    result = pull.install(ref)
    assert result["changed"] is True and pull.python("import demo, helper; print(demo.VERSION)") == "2.0"
    store = pull.cache / "unpacked"
    assert not [p.name for p in store.iterdir() if p.name.startswith(".")]  # no unfinished unpack left
    assert "0 drifted" in pull("verify", str(pull.dest), "--cache", str(pull.cache)).stdout


def _layers(
    wheels: Wheels, tmp: Path, name: str, epoch: str | None, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    if epoch is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    tool_path = next(wheels.tools.glob("uv-*.whl"))
    lock = [wheel_of(wheels.demo2), wheel_of(wheels.helper)]
    files = {w.digest: p for w, p in zip(lock, (wheels.demo2, wheels.helper))}
    made, _ = make_layers(
        lock,
        files,
        python=DISTRO_PYTHON,
        tool=Tool(name="uv", version=tool_path.name.split("-")[1], wheel=tool_path),
        cache=tmp / name / "cache",
        workdir=tmp / name / "work",
    )
    return {d.name: d.digest for d in made.distributions}


def test_layers_are_reproducible(wheels: Wheels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two builds with nothing in common but their inputs (separate caches, scratch venvs, times).
    first = _layers(wheels, tmp_path, "a", None, monkeypatch)
    assert _layers(wheels, tmp_path, "b", None, monkeypatch) == first
    dated = _layers(wheels, tmp_path, "c", "1700000000", monkeypatch)
    assert _layers(wheels, tmp_path, "d", "1700000000", monkeypatch) == dated
    assert dated != first  # SOURCE_DATE_EPOCH is every file's mtime, which the pyc headers name


def test_skopeo_copies_an_artifact_with_layers_keeping_every_digest(
    artifacts: Artifacts, wheels: Wheels, tmp_path: Path
) -> None:
    skopeo = "/usr/bin/skopeo"
    require_program(skopeo, package="skopeo")
    ref = artifacts.write([wheels.demo2, wheels.helper])
    copy = tmp_path / "copy"
    subprocess.run(
        [skopeo, "copy", "--all", f"oci:{artifacts.root}:demo:1.0", f"oci:{copy}:demo:1.0"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    index = Index.from_bytes(Layout(copy).read_blob(Layout(copy).resolve("demo:1.0").digest))
    manifest = Manifest.from_bytes(Layout(copy).read_blob(index.manifests[0].digest))
    config = VenvConfig.from_json(json.loads(Layout(copy).read_blob(manifest.config.digest)))
    assert config == artifacts.config(ref)
    assert {d.digest for d in manifest.layers} >= {d.digest for d in config.layers.distributions}  # type: ignore[union-attr]
    assert canonical_json(index.to_json())  # a valid index, as written
    assert isinstance(manifest.config, Descriptor)


def test_a_layer_of_empty_folders_is_refused_quickly_within_its_bound(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    # 200k folders compress to a few MB: each must count against what the layer may unpack to.
    folders = [_member(f"share/d{i}", type=tarfile.DIRTYPE, mode=0o755) for i in range(200_000)]
    blob = _tar(folders)
    good = artifacts.write([wheels.demo1])
    ref = _swap_layer(artifacts, good, "demo", blob)
    start = time.monotonic()
    proc = pull("install", ref, ok=False)
    took = time.monotonic() - start
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    bound = 64 * max(len(blob), 1 << 20)
    assert (
        "layer demo-1.0.venv.tar.gz" in proc.stderr and f"unpacks to more than {bound} bytes" in proc.stderr
    )
    assert took < 60, took  # generous: 2 shared cores; without the bound it ran past the timeout
    assert not (pull.cache / "unpacked" / artifacts.layer(ref, "demo").digest.split(":")[1]).exists()


def test_deep_parents_count_against_the_bound(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    # Folders a file's path makes as parents cost as much as named ones.
    # Each name is about 1.6 KB and makes 801 folders: 32k folders (128 MiB) from a tiny layer.
    blob = _tar([_member(f"share/x{i}/" + "d/" * 800 + "f", b"") for i in range(40)])
    good = artifacts.write([wheels.demo1])
    ref = _swap_layer(artifacts, good, "demo", blob)
    proc = pull("install", ref, ok=False)
    assert proc.returncode == 1, proc.stderr
    assert "unpacks to more than" in proc.stderr
    assert "Traceback" not in proc.stderr
