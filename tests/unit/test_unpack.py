"""Unpacking layers from their cached blobs, each inflated in a thread ahead of the one whose files
are written: real tar+gzip blobs, made here."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
from pathlib import Path
from typing import Callable

import pytest

from venvship.artifact.layerformat import LayerInfo
from venvship.errors import ArtifactError
from venvship.install.unpack import Ahead, unpack

SITE = "lib/python3.11/site-packages"
BIG = 6 << 20  # more than venv-pull unpacks from memory: streamed


def _layer(folder: Path, name: str, files: dict[str, bytes], *, tail: bytes = b"") -> tuple[Path, LayerInfo]:
    """Write a layer blob of ``files`` (venv-relative name → bytes) into ``folder``; return it and its info."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    blob = gzip.compress(raw.getvalue(), compresslevel=1, mtime=0) + tail
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    path = folder / digest.split(":")[1]
    path.write_bytes(blob)
    return path, LayerInfo(name=name, version="1.0", wheel_sha256="0" * 64, digest=digest, size=len(blob))


def _within(seconds: float, work: Callable[[], object]) -> object:
    """Return what ``work`` returns (or raise what it raises), run in a thread; fail rather than
    hang if it takes longer than ``seconds``."""
    out: list[object] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if failed:
        raise failed[0]
    return out[0]


def test_small_and_streamed_layers_unpack_in_order_and_a_skipped_one_holds_nothing_up(tmp_path: Path) -> None:
    big = os.urandom(BIG)  # incompressible: its blob is large too
    layers = [
        _layer(tmp_path, "small", {f"{SITE}/small.py": b"X = 1\n"}),
        _layer(tmp_path, "big", {f"{SITE}/big/data.bin": big, f"{SITE}/big/__init__.py": b""}),
        _layer(tmp_path, "skipped", {f"{SITE}/skipped/data.bin": os.urandom(BIG)}),  # never read
        _layer(tmp_path, "last", {f"{SITE}/last.py": b"Y = 2\n"}),
    ]

    def run() -> dict[str, dict[str, list[object]]]:
        done = {}
        with Ahead(layers) as ahead:
            for blob, info in layers:
                made = ahead.take(info)
                assert made is not None
                if (
                    info.name != "skipped"
                ):  # as when the store has it by then: the thread must not wait for it
                    files, _ = unpack(blob, tmp_path / info.name, layer=info, mtime=0, inflated=made)
                    done[info.name] = files
        return done

    done = _within(120, run)
    assert isinstance(done, dict) and sorted(done) == ["big", "last", "small"]
    assert (tmp_path / "big" / SITE / "big" / "data.bin").read_bytes() == big
    assert done["big"][f"{SITE}/big/data.bin"][1] == BIG
    assert (tmp_path / "last" / SITE / "last.py").read_bytes() == b"Y = 2\n"
    assert not (tmp_path / "skipped").exists()


@pytest.mark.parametrize("size", [1024, BIG], ids=["in-memory", "streamed"])
def test_a_blob_that_does_not_hash_to_its_digest_is_refused(tmp_path: Path, size: int) -> None:
    blob, info = _layer(tmp_path, "demo", {f"{SITE}/demo/data.bin": os.urandom(size)})
    other = "sha256:" + "1" * 64  # a valid layer, named by another digest
    info = LayerInfo(name="demo", version="1.0", wheel_sha256="0" * 64, digest=other, size=info.size)
    with pytest.raises(
        ArtifactError,
        match=r"layer demo-1\.0\.venv\.tar\.gz \(sha256:1+\): the cached blob hashes to sha256:",
    ):
        unpack(blob, tmp_path / "tree", layer=info, mtime=0)


def test_a_streamed_blob_with_bytes_after_its_gzip_stream_is_refused(tmp_path: Path) -> None:
    blob, info = _layer(tmp_path, "demo", {f"{SITE}/demo/data.bin": os.urandom(BIG)}, tail=b"more")
    with pytest.raises(ArtifactError, match="not one gzip stream"):
        unpack(blob, tmp_path / "tree", layer=info, mtime=0)


def test_a_streamed_blob_cut_short_is_refused(tmp_path: Path) -> None:
    blob, info = _layer(tmp_path, "demo", {f"{SITE}/demo/data.bin": os.urandom(BIG)})
    cut = blob.read_bytes()[: info.size // 2]
    blob.write_bytes(cut)
    info = LayerInfo(name="demo", version="1.0", wheel_sha256="0" * 64, digest=info.digest, size=len(cut))
    with pytest.raises(ArtifactError, match=r"layer demo-1\.0\.venv\.tar\.gz"):
        _within(60, lambda: unpack(blob, tmp_path / "tree", layer=info, mtime=0))
