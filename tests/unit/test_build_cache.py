"""``venvship cache``: the build cache part by part, and what ``cache prune`` removes and keeps.

The cache here is laid out by hand as builds lay it out (tests/integration/builder/test_cache.py
prunes one a real build made); its ages are set with ``os.utime``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from venvship.artifact.documents import REF_NAME, Descriptor
from venvship.builder.cachecare import using_cache
from venvship.cli.venvship_main import main
from venvship.oci.layout import Layout

OLD = time.time() - 40 * 86400  # older than the default 30 days


def _file(path: Path, data: bytes = b"x" * 100, *, old: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def _json_blob(layout: Layout, doc: dict[str, object]) -> Descriptor:
    raw = json.dumps(doc).encode()
    digest, _ = layout.put_bytes(raw)
    return Descriptor(media_type=str(doc["mediaType"]), digest=digest, size=len(raw))


def _staging(cache: Path) -> tuple[Layout, set[str], str]:
    """A staging layout: a tagged index → manifest → config and layer, a referrers tag, and one
    blob that a replaced build left (no tag reaches it). Returns it, the reachable digests and the orphan."""
    layout = Layout.create(cache / "staging")
    config = _json_blob(layout, {"mediaType": "application/vnd.venvship.venv.config.v1+json"})
    layer_digest, _ = layout.put_bytes(b"wheel bytes")
    layer = {"mediaType": "application/octet-stream", "digest": layer_digest, "size": 11}
    manifest = _json_blob(
        layout,
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.to_json(),
            "layers": [layer],
        },
    )
    index = _json_blob(
        layout, {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest.to_json()]}
    )
    signature = _json_blob(
        layout,
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config.to_json(), "layers": []},
    )
    referrers = _json_blob(
        layout, {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [signature.to_json()]}
    )
    orphan, _ = layout.put_bytes(b"a wheel of a build since replaced")
    layout.set_refs(
        {
            "demo:1.0": Descriptor(
                media_type=index.media_type,
                digest=index.digest,
                size=index.size,
                annotations={REF_NAME: "demo:1.0"},
            ),
            "demo:sha256-" + index.digest[7:]: Descriptor(
                media_type=referrers.media_type,
                digest=referrers.digest,
                size=referrers.size,
                annotations={REF_NAME: "demo:sha256-" + index.digest[7:]},
            ),
        }
    )
    reachable = {
        config.digest,
        layer_digest,
        manifest.digest,
        index.digest,
        signature.digest,
        referrers.digest,
    }
    return layout, reachable, orphan


def _cache(tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    _file(cache / "builders" / "old" / "venvship-builder.json", b"{}", old=True)
    _file(cache / "builders" / "old" / "bin" / "python", b"")  # its files' age does not count: its use does
    _file(cache / "builders" / "old.lock", b"")
    _file(cache / "builders" / "recent" / "venvship-builder.json", b"{}")
    _file(cache / "builders" / "unfinished" / "bin" / "python", b"")  # killed while made: no marker
    _file(cache / "wheels" / "sha256" / "aa" / "old-1.0-py3-none-any.whl", old=True)
    _file(cache / "wheels" / "sha256" / "bb" / "recent-1.0-py3-none-any.whl")
    _file(cache / "wheels" / "sources" / "old.json", b"{}", old=True)
    _file(cache / "layers" / "k1.tar.gz", old=True)
    _file(cache / "layers" / "k1.json", b"{}", old=True)
    _file(cache / "layers" / "k2.tar.gz")
    _file(cache / "layers" / "k2.json", b"{}", old=True)  # its blob was used: the pair stays
    _file(cache / "resolutions" / "old.json", b"{}", old=True)
    _file(cache / "state" / "abc" / "demo-key.json", b"{}")
    _file(cache / "work" / "demo-debian-12-amd64-cp311" / "inputs" / "x", b"")  # a killed build's
    _file(cache / "locks" / "demo-debian-12-amd64-cp311.lock", b"")
    return cache


def _left(cache: Path) -> set[str]:
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and "staging" not in p.parts}


def test_cache_shows_each_part_with_its_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = _cache(tmp_path)
    _staging(cache)
    assert main(["cache", "--cache-dir", str(cache), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    parts = {p["name"]: (p["entries"], p["size"]) for p in data["parts"]}
    assert parts["builders"] == (3, 4)  # old, recent, unfinished; their files' bytes
    assert parts["wheels"] == (3, 202)
    assert parts["layers"] == (2, 204)
    assert parts["staging"][0] == 7  # its blobs
    assert parts["work"] == (1, 0)
    assert data["size"] == sum(p["size"] for p in data["parts"]) and data["cache"] == str(cache)
    assert main(["cache", "--cache-dir", str(cache)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{cache}: ")
    assert [line.split()[0] for line in lines[1:]] == [
        "builders/",
        "wheels/",
        "layers/",
        "staging/",
        "resolutions/",
        "state/",
        "work/",
    ]


def test_prune_removes_what_no_recent_build_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = _cache(tmp_path)
    layout, reachable, orphan = _staging(cache)
    assert main(["cache", "prune", "--cache-dir", str(cache), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert _left(cache) == {
        "builders/recent/venvship-builder.json",
        "wheels/sha256/bb/recent-1.0-py3-none-any.whl",
        "layers/k2.tar.gz",
        "layers/k2.json",
        "state/abc/demo-key.json",
        "locks/demo-debian-12-amd64-cp311.lock",
        "locks/cache.lock",
    }
    assert set(layout.blob_digests()) == reachable and orphan not in reachable
    assert str(cache / "work" / "demo-debian-12-amd64-cp311") in result["removed"]
    assert result["freed"] > 0
    # Nothing more to remove: a second prune is a no-op.
    assert main(["cache", "prune", "--cache-dir", str(cache)]) == 0
    assert capsys.readouterr().out == f"{cache}: removed 0 entries, 0 B freed\n"


def test_prune_days_and_all(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    _staging(cache)
    assert main(["cache", "prune", "--cache-dir", str(cache), "--days", "50"]) == 0
    assert "wheels/sha256/aa/old-1.0-py3-none-any.whl" in _left(cache)  # 40 days old: kept
    assert main(["cache", "prune", "--cache-dir", str(cache), "--all"]) == 0
    assert _left(cache) == {"locks/demo-debian-12-amd64-cp311.lock", "locks/cache.lock"}
    assert not (cache / "staging").exists()


def test_prune_never_removes_what_a_running_build_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _cache(tmp_path)
    before = _left(cache)
    with using_cache(cache):  # as build_recipe holds it, for as long as a build runs
        assert main(["cache", "prune", "--cache-dir", str(cache), "--all"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"venvship: error: {cache}: a build is using this cache")
    assert err.count("\n") == 1
    assert _left(cache) == before | {"locks/cache.lock"}


def test_prune_of_a_cache_that_is_not_there_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "prune", "--cache-dir", str(tmp_path / "none")]) == 0
    assert not (tmp_path / "none").exists()
    assert main(["cache", "--cache-dir", str(tmp_path / "none"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["size"] == 0
    assert main(["cache", "prune", "--days", "0"]) == 2  # 0 days would be --all: say so
