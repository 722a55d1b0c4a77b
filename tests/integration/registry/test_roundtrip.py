"""Push → manifest → pull round trips against each registry variant."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from venvship.artifact.documents import (
    CONFIG_TYPE,
    INDEX_TYPE,
    MANIFEST_TYPE,
    TITLE,
    WHEEL_TYPE,
    Descriptor,
    Index,
    Manifest,
    canonical_json,
    sha256_digest,
)
from venvship.oci.layout import Layout
from venvship.oci.publish import BlobPush, push_blobs
from venvship.oci.reference import RegistryRef
from venvship.oci.registry import RegistrySource

from ._support import RegistryServer, client_for, random_blob

pytestmark = pytest.mark.registry


def test_push_manifest_pull_round_trip(any_registry: RegistryServer, tmp_path: Path) -> None:
    client = client_for(any_registry)
    repo = "venvship-test/roundtrip"
    blobs = [random_blob(tmp_path / "src", size) for size in (1, 4096, 3 << 20)]
    config = b'{"schema":1}'
    config_path = tmp_path / "config.json"
    config_path.write_bytes(config)
    items = [BlobPush(digest=d, size=p.stat().st_size, path=p) for p, d in blobs]
    items.append(BlobPush(digest=sha256_digest(config), size=len(config), path=config_path))

    assert push_blobs(client, repo, items) == ["uploaded"] * 4
    assert push_blobs(client, repo, items) == ["exists"] * 4
    assert client.head_blob(repo, blobs[2][1]) == 3 << 20

    manifest = Manifest(
        config=Descriptor(media_type=CONFIG_TYPE, digest=sha256_digest(config), size=len(config)),
        layers=tuple(
            Descriptor(
                media_type=WHEEL_TYPE, digest=d, size=p.stat().st_size, annotations={TITLE: f"w{i}.whl"}
            )
            for i, (p, d) in enumerate(blobs)
        ),
        annotations={},
    )
    raw = canonical_json(manifest.to_json())
    digest = client.put_manifest(repo, "1.0-x", raw, MANIFEST_TYPE)
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    index_raw = canonical_json(
        Index(manifests=(Descriptor(media_type=MANIFEST_TYPE, digest=digest, size=len(raw)),)).to_json()
    )
    index_digest = client.put_manifest(repo, "1.0", index_raw, INDEX_TYPE)

    assert client.check_tag(repo, "1.0-x") == digest
    assert client.check_tag(repo, "nope") is None
    assert client.get_manifest(repo, "1.0-x") == (MANIFEST_TYPE, raw, digest)
    assert client.get_manifest(repo, digest) == (MANIFEST_TYPE, raw, digest)
    assert client.get_manifest(repo, "1.0") == (INDEX_TYPE, index_raw, index_digest)
    assert sorted(client.list_tags(repo)) == ["1.0", "1.0-x"]

    source = RegistrySource(
        RegistryRef(registry=any_registry.host, repository=repo, tag="1.0"), client=client
    )
    desc, got = source.get_manifest("1.0")
    assert (desc.media_type, desc.digest, got) == (INDEX_TYPE, index_digest, index_raw)
    cache = Layout.create(tmp_path / "cache")
    assert [source.fetch_blob(d, p.stat().st_size, cache) for p, d in blobs] == [True] * 3
    for path, d in blobs:
        assert cache.blob_path(d).read_bytes() == path.read_bytes()
    assert source.fetch_blob(blobs[0][1], 1, cache) is False


def test_cross_repository_mount(open_registry: RegistryServer, tmp_path: Path) -> None:
    client = client_for(open_registry)
    path, digest = random_blob(tmp_path, 1000)
    assert client.upload_blob("mount/a", path, digest, 1000) == "uploaded"
    assert client.upload_blob("mount/b", path, digest, 1000, mount_from="mount/a") == "mounted"
    assert client.head_blob("mount/b", digest) == 1000
    # A source repository without the blob: the registry opens an upload (202) and we upload.
    path2, digest2 = random_blob(tmp_path, 500)
    assert client.upload_blob("mount/c", path2, digest2, 500, mount_from="mount/a") == "uploaded"


def test_list_tags(open_registry: RegistryServer, tmp_path: Path) -> None:
    client = client_for(open_registry)
    repo = "venvship-test/tags"
    config = b"{}"
    config_path = tmp_path / "c"
    config_path.write_bytes(config)
    client.push_blob(repo, config_path, sha256_digest(config), 2)
    raw = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": sha256_digest(config), "size": 2},
            "layers": [],
        }
    )
    for tag in ("b", "a", "c"):
        client.put_manifest(repo, tag, raw, MANIFEST_TYPE)
    assert sorted(client.list_tags(repo)) == ["a", "b", "c"]
    assert client.list_tags("venvship-test/does-not-exist") == []


def test_basic_credentials_go_up_front(htpasswd_registry: RegistryServer, tmp_path: Path) -> None:
    """Only the first, bodiless request meets a challenge; no blob body is ever sent twice."""

    def challenged() -> list[str]:
        lines = htpasswd_registry.log.read_text().splitlines()
        return [re.sub(r".*http\.request\.method=(\w+).*", r"\1", ln) for ln in lines if "challenge" in ln]

    before = len(challenged())
    client = client_for(htpasswd_registry)
    for size in (10, 2 << 20):
        path, digest = random_blob(tmp_path, size)
        assert client.push_blob("basic/upfront", path, digest, size)
    assert challenged()[before:] == ["HEAD"]
