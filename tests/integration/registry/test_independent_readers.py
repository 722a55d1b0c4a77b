"""Clients that are not venvship read what it published: skopeo (copy --all) and oras-py (pull)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from venvship.artifact.documents import TITLE
from venvship.oci.publish import publish_layout
from venvship.oci.reference import RegistryRef

from ._support import RegistryServer, client_for
from .conftest import BuiltDemo

pytestmark = pytest.mark.registry


def publish_demo(server: RegistryServer, built: BuiltDemo, namespace: str) -> None:
    dest = RegistryRef(registry=server.host, repository=namespace)
    publish_layout(built.layout, [built.platform_ref, "demo:1.0"], dest, client_for(server))


@pytest.fixture(scope="module")
def skopeo_copy(
    open_registry: RegistryServer, built_demo: BuiltDemo, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Publish the demo artifact, then ``skopeo copy --all`` its index tag to an ``oci:`` directory."""
    publish_demo(open_registry, built_demo, "skopeo")
    work = tmp_path_factory.mktemp("skopeo")
    (work / "home").mkdir()
    out = work / "oci"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--all",
            "--src-tls-verify=false",
            f"docker://{open_registry.host}/skopeo/demo:1.0",
            f"oci:{out}:1.0",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "HOME": str(work / "home")},  # no real credentials, nothing written to HOME
        timeout=120,
    )
    return out


def test_skopeo_copy_all_keeps_every_manifest_and_blob_digest(
    skopeo_copy: Path, built_demo: BuiltDemo
) -> None:
    layout = built_demo.layout
    manifest = built_demo.manifest()
    [top] = json.loads((skopeo_copy / "index.json").read_text())["manifests"]
    assert top["annotations"]["org.opencontainers.image.ref.name"] == "1.0"
    [entry] = json.loads((skopeo_copy / "blobs" / "sha256" / top["digest"].split(":", 1)[1]).read_bytes())[
        "manifests"
    ]
    assert entry["digest"] == layout.resolve(built_demo.platform_ref).digest
    ours = [layout.resolve(built_demo.platform_ref), manifest.config, *manifest.layers]
    for desc in ours:
        data = (skopeo_copy / "blobs" / "sha256" / desc.digest.split(":", 1)[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == desc.digest
        assert data == layout.blob_path(desc.digest).read_bytes()


def test_skopeo_copy_all_keeps_the_index_digest(skopeo_copy: Path, built_demo: BuiltDemo) -> None:
    [top] = json.loads((skopeo_copy / "index.json").read_text())["manifests"]
    assert top["digest"] == built_demo.layout.resolve("demo:1.0").digest


def test_oras_py_pulls_the_wheels_by_their_titles(
    open_registry: RegistryServer, built_demo: BuiltDemo, tmp_path: Path
) -> None:
    import oras.provider  # type: ignore[import-untyped]  # a test-only reader without type hints

    publish_demo(open_registry, built_demo, "oras")
    target = f"{open_registry.host}/oras/demo:{built_demo.platform_tag}"
    reg = oras.provider.Registry(hostname=open_registry.host, insecure=True)  # insecure: plain HTTP

    manifest = reg.get_manifest(target)
    titles = sorted(layer["annotations"][TITLE] for layer in manifest["layers"])
    config = built_demo.config()
    assert config.layers is not None
    wheels = {w.filename: w.sha256 for w in (*config.lock, *config.tools)}
    wheels.update({d.title: d.digest.split(":")[1] for d in config.layers.distributions})  # and the layers
    assert titles == sorted(wheels)

    outdir = tmp_path / "pulled"
    files = [Path(f) for f in reg.pull(target=target, outdir=str(outdir))]
    assert sorted(f.name for f in files) == titles
    for path in files:
        assert path.parent == outdir
        assert hashlib.sha256(path.read_bytes()).hexdigest() == wheels[path.name]
