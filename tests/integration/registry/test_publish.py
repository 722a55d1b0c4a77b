"""publish_layout and merge_registry_index against a real registry, cross-checked with skopeo."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from venvship.artifact.documents import INDEX_TYPE, MANIFEST_TYPE
from venvship.errors import ArtifactError
from venvship.oci.attach import RegistryStore
from venvship.oci.layout import Layout
from venvship.oci.publish import fetch_to_layout, merge_registry_index, publish_layout
from venvship.oci.reference import RegistryRef
from venvship.oci.retag import Retag, TagMoveRefused

from ._support import RegistryServer, client_for, make_venv_artifact

pytestmark = pytest.mark.registry

SHARED = [("shared-1.0-py3-none-any.whl", os.urandom(5000))]


@pytest.fixture
def two_platforms(tmp_path: Path) -> Layout:
    layout = Layout.create(tmp_path / "oci")
    for arch in ("amd64", "arm64"):
        own = [(f"native-1.0-cp311-cp311-linux_{arch}.whl", os.urandom(3000))]
        make_venv_artifact(layout, tmp_path / arch, arch=arch, wheels=SHARED + own)
    return layout


def test_publish_then_republish_uploads_nothing(
    open_registry: RegistryServer, two_platforms: Layout, home_dir: Path
) -> None:
    client = client_for(open_registry)
    dest = RegistryRef(registry=open_registry.host, repository="pub1")
    first = publish_layout(two_platforms, ["demo:1.0"], dest, client)
    # shared wheel + 2 native wheels + 2 configs
    assert (first.blobs_uploaded, first.blobs_skipped, first.blobs_mounted) == (5, 0, 0)
    assert first.tags == first.tags_changed == (f"{open_registry.host}/pub1/demo:1.0",)
    assert first.manifests == 3

    again = publish_layout(two_platforms, ["demo:1.0"], dest, client)
    assert (again.blobs_uploaded, again.blobs_skipped, again.bytes_uploaded) == (0, 5, 0)
    assert again.tags_changed == ()

    # An independent reader sees the exact bytes: digests survive the trip.
    index_desc = two_platforms.resolve("demo:1.0")
    raw = skopeo_raw(f"docker://{open_registry.host}/pub1/demo:1.0", home_dir)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == index_desc.digest
    child = two_platforms.resolve("demo:1.0-debian-12-arm64-cp311").digest
    raw = skopeo_raw(f"docker://{open_registry.host}/pub1/demo@{child}", home_dir)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == child


def test_merge_registry_index_matches_layout_index(
    open_registry: RegistryServer, two_platforms: Layout
) -> None:
    client = client_for(open_registry)
    dest = RegistryRef(registry=open_registry.host, repository="pub2")
    refs = ["demo:1.0-debian-12-amd64-cp311", "demo:1.0-debian-12-arm64-cp311"]
    result = publish_layout(two_platforms, refs, dest, client)
    assert len(result.tags) == 2
    assert client.check_tag("pub2/demo", "1.0") is None

    digest = merge_registry_index(client, "pub2/demo", "1.0")
    assert digest == two_platforms.resolve("demo:1.0").digest
    assert merge_registry_index(client, "pub2/demo", "1.0") == digest
    media_type, _, got = client.get_manifest("pub2/demo", "1.0")
    assert (media_type, got) == (INDEX_TYPE, digest)

    # A second, different manifest for one platform under another VERSION-* tag is refused.
    other = two_platforms.resolve("demo:1.0-debian-12-amd64-cp311")
    _, raw, _ = client.get_manifest("pub2/demo", other.digest)
    client.put_manifest(
        "pub2/demo", "1.0-debian-12-amd64-cp311-again", raw.replace(b'"1.0"', b'"1.0" '), MANIFEST_TYPE
    )
    with pytest.raises(ArtifactError, match="two manifests for platform"):
        merge_registry_index(client, "pub2/demo", "1.0")
    with pytest.raises(ArtifactError, match="no per-platform tags"):
        merge_registry_index(client, "pub2/demo", "9.9")


def test_publish_with_tokens_mounts_shared_blobs(
    token_registry: RegistryServer, two_platforms: Layout, tmp_path: Path
) -> None:
    make_venv_artifact(two_platforms, tmp_path / "other", name="other", wheels=SHARED)
    client = client_for(token_registry)
    dest = RegistryRef(registry=token_registry.host, repository="team")
    result = publish_layout(two_platforms, ["demo:1.0", "other:1.0"], dest, client)
    assert result.blobs_mounted == 1  # the shared wheel, uploaded once for demo
    assert result.blobs_uploaded == 6
    assert token_registry.token is not None
    scopes = {s for _, req in token_registry.token.requests for s in req}
    assert "repository:team/demo:pull" in scopes  # asked for the mount source alongside team/other


def skopeo_raw(ref: str, home: Path) -> bytes:
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", ref],
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    )
    return proc.stdout


def test_a_moved_tag_is_named_and_refused_with_immutable_tags(
    open_registry: RegistryServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(open_registry)
    dest = RegistryRef(registry=open_registry.host, repository="retag")
    refs = ["demo:1.0", "demo:1.0-debian-12-amd64-cp311"]
    first, second = Layout.create(tmp_path / "a"), Layout.create(tmp_path / "b")
    make_venv_artifact(first, tmp_path / "wa")
    make_venv_artifact(second, tmp_path / "wb")  # the same tags, other wheels
    publish_layout(first, refs, dest, client)
    with pytest.raises(TagMoveRefused):
        publish_layout(second, refs, dest, client, immutable_tags=True)
    for ref in refs:
        assert client.check_tag("retag/demo", ref.split(":")[1]) == first.resolve(ref).digest
    copy = Layout.create(tmp_path / "copy")  # an air-gapped copy, made before the tag moved
    assert fetch_to_layout(RegistryStore(client, "retag/demo"), "1.0", copy, "demo").retagged == ()
    caplog.set_level("WARNING", logger="venvship")
    result = publish_layout(second, refs, dest, client)
    assert result.retagged == tuple(
        Retag(
            ref=f"{open_registry.host}/retag/{ref}",
            old=first.resolve(ref).digest,
            new=second.resolve(ref).digest,
        )
        for ref in refs
    )
    assert caplog.messages == [str(move) for move in result.retagged]
    # Copying the moved tag into the layout says so too.
    fetched = fetch_to_layout(RegistryStore(client, "retag/demo"), "1.0", copy, "demo")
    assert fetched.retagged == (
        Retag(ref="demo:1.0", old=first.resolve(refs[0]).digest, new=second.resolve(refs[0]).digest),
    )
    # An index that gains a platform has not moved.
    make_venv_artifact(second, tmp_path / "wc", arch="arm64")
    grown = publish_layout(second, ["demo:1.0"], dest, client, immutable_tags=True)
    assert grown.retagged == () and grown.tags_changed == (f"{open_registry.host}/retag/demo:1.0",)
    regrown = fetch_to_layout(RegistryStore(client, "retag/demo"), "1.0", copy, "demo")
    assert regrown.retagged == () and regrown.tags_changed == ("demo:1.0",)
