"""Bad artifacts are refused before they can change anything: corrupt blobs, unsafe names."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from venvship.artifact.documents import canonical_json
from venvship.oci.layout import Layout

from .conftest import Artifacts, Pull, Wheels, make_wheel, tree_snapshot, wheel_of


@pytest.mark.parametrize("mode", ["layers", "from-wheels"])
@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_bad_blob_in_source(artifacts: Artifacts, wheels: Wheels, pull: Pull, damage: str, mode: str) -> None:
    first = pull.install(artifacts.write([wheels.demo1]))
    ref = artifacts.write([wheels.demo2, wheels.helper], version="2.0")
    # The blob this install pulls: the helper's layer, or its wheel.
    digest = artifacts.layer(ref, "helper").digest if mode == "layers" else wheel_of(wheels.helper).digest
    blob = Layout(artifacts.root).blob_path(digest)
    data = blob.read_bytes()
    blob.write_bytes(data[:100] + b"X" + data[101:] if damage == "corrupt" else data[: len(data) // 2])
    before = tree_snapshot(pull.dest.parent, pull.facts)
    proc = pull("install", ref, *(["--from-wheels"] if mode == "from-wheels" else []), ok=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("venv-pull: error: ") and digest in last, last
    # Each damage by its own reason: a changed byte fails the hash, a short blob its size.
    reason = "digest mismatch" if damage == "corrupt" else f"got {len(data) // 2} bytes, expected {len(data)}"
    assert reason in last, last
    assert "Traceback" not in proc.stderr
    assert tree_snapshot(pull.dest.parent, pull.facts) == before
    assert os.readlink(pull.dest).endswith(first["generation"])
    cache = Layout(pull.cache)
    for digest in cache.blob_digests():
        path = cache.blob_path(digest)
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not list((pull.cache / "blobs" / "sha256").glob(".*"))  # no temp leftovers


@pytest.mark.parametrize("title", ["../../x", "/etc/passwd"])
def test_unsafe_layer_title_is_refused(artifacts: Artifacts, wheels: Wheels, pull: Pull, title: str) -> None:
    artifacts.write([wheels.demo1])
    layout = Layout(artifacts.root)
    desc = layout.resolve("demo:1.0-" + next(iter(layout.refs())).split("-", 1)[1])
    manifest = json.loads(layout.read_blob(desc.digest))
    manifest["layers"][0]["annotations"]["org.opencontainers.image.title"] = title
    raw = canonical_json(manifest)
    digest, _ = layout.put_bytes(raw)
    from venvship.artifact.documents import Descriptor

    layout.set_refs({"demo:evil": Descriptor(media_type=desc.media_type, digest=digest, size=len(raw))})
    proc = pull("install", f"oci:{artifacts.root}:demo:evil", ok=False)
    assert proc.returncode == 1
    assert "unsafe or missing title" in proc.stderr
    assert not os.path.lexists(pull.dest)


def test_wheel_with_path_traversal_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # Installed from wheels on the target (a layer made from it is refused at build time).
    evil = make_wheel(tmp_path / "evil", "evil", "1.0", extra={"../../../escaped.py": "boom = 1\n"})
    proc = pull("install", artifacts.write([evil], layers=False), "--from-wheels", ok=False)
    assert proc.returncode == 1
    assert "unsafe member path '../../../escaped.py'" in proc.stderr
    assert not os.path.lexists(pull.dest)
    assert not list(tmp_path.rglob("escaped.py"))
