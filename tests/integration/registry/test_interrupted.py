"""A registry that dies mid-transfer or serves corrupt bytes: a clear error, nothing half-done, a rerun
that completes.

The registry is killed for real (SIGKILL) by a byte-counting TCP relay in front of it, so the kill
lands inside a blob transfer every time; it is then restarted on the same port and storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.layout import Layout
from venvship.oci.publish import publish_layout
from venvship.oci.reference import RegistryRef

from ._relay import Direction, Relay
from ._support import RegistryServer, client_for, install_argv, make_venv_artifact, restart_registry
from .conftest import BuiltDemo

pytestmark = pytest.mark.registry

ATTEMPTS = 5  # the CLI's client: 4 retries after the first try


@pytest.fixture
def kill_switch(own_registry: RegistryServer) -> Iterator[Callable[[Direction, int], Relay]]:
    """Return a factory of relays to ``own_registry`` that kill it after N bytes one way."""
    relays: list[Relay] = []

    def kill() -> None:
        own_registry.proc.kill()
        own_registry.proc.wait()

    def make(direction: Direction, after: int) -> Relay:
        relay = Relay(own_registry.host, direction=direction, after=after, trip=kill)
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        relay.close()


def blob_files(cache: Path) -> list[Path]:
    """Every file in the cache's blob folder; each must be a complete, verified blob."""
    files = sorted(p for p in (cache / "blobs").rglob("*") if p.is_file())
    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"bad blob left in {path}"
    return files


def generations(tmp_path: Path) -> list[str]:
    root = tmp_path / "venvs" / ".demo.venvship"
    return sorted(p.name for p in root.iterdir() if p.name != ".lock") if root.exists() else []


def test_registry_killed_mid_push_leaves_no_tag_and_a_rerun_completes(
    own_registry: RegistryServer,
    kill_switch: Callable[[Direction, int], Relay],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layout = Layout.create(tmp_path / "oci")
    wheels = [("big-1.0-py3-none-any.whl", os.urandom(24 << 20)), ("small-1.0-py3-none-any.whl", b"s" * 3000)]
    tag = make_venv_artifact(layout, tmp_path / "wheels", wheels=wheels)
    relay = kill_switch("up", 4 << 20)
    argv = ["publish", f"oci:{layout.root}", f"{relay.host}/dying", "--insecure"]

    assert venvship_main.main(argv) == 1
    _, err = capsys.readouterr()
    assert relay.tripped.is_set()
    *logged, last = err.splitlines()
    assert last.startswith(f"venvship: error: {relay.host}/dying/demo: push sha256:")
    assert f"(gave up after {ATTEMPTS} attempts)" in last
    retries = [line for line in logged if "retrying in" in line]
    assert 1 <= len(retries) <= (ATTEMPTS - 1) * 3  # bounded: at most 4 per blob (config + 2 wheels)
    assert "Traceback" not in err

    restart_registry(own_registry)
    client = client_for(own_registry)
    assert client.list_tags("dying/demo") == []  # blobs go first, tags last: no tag points at a gap

    assert venvship_main.main(argv) == 0
    assert f"published {relay.host}/dying/demo:1.0" in capsys.readouterr().out
    assert sorted(client.list_tags("dying/demo")) == sorted(["1.0", tag])
    for _, data in wheels:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert client.head_blob("dying/demo", digest) == len(data)


def test_registry_killed_mid_pull_installs_nothing_and_a_rerun_completes(
    own_registry: RegistryServer,
    kill_switch: Callable[[Direction, int], Relay],
    built_demo: BuiltDemo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = RegistryRef(registry=own_registry.host, repository="pull")
    publish_layout(built_demo.layout, [built_demo.platform_ref, "demo:1.0"], dest, client_for(own_registry))
    # Half of what the install pulls (the layers; the manifests and config are far smaller). Blobs
    # come over a pool of 4, in any order: the kill may land in any of them.
    layers = {layer.digest for layer in built_demo.layers()}
    relay = kill_switch("down", sum(layer.size for layer in built_demo.layers()) // 2)
    cache = tmp_path / "blobcache"
    argv = install_argv(f"{relay.host}/pull/demo:1.0", tmp_path, "--insecure", "--json", cache=cache)

    assert venv_pull_main.main(argv) == 1
    out, err = capsys.readouterr()
    assert relay.tripped.is_set()
    [line] = [ln for ln in err.splitlines() if ln.startswith("venv-pull: error:")]
    assert json.loads(out) == {"error": line.removeprefix("venv-pull: error: "), "schema": 1}  # --json
    assert line.startswith(f"venv-pull: error: {relay.host}/pull/demo")
    [broken] = [digest for digest in layers if digest in line]  # names the blob it was pulling
    assert "Traceback" not in err
    dest_path = tmp_path / "venvs" / "demo"
    assert not dest_path.exists() and not dest_path.is_symlink()
    assert generations(tmp_path) == []
    assert not (tmp_path / "facts").exists()
    complete = blob_files(cache)  # what did arrive is whole and verified; nothing partial
    assert broken.split(":")[1] not in [p.name for p in complete]

    restart_registry(own_registry)
    assert venv_pull_main.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is True
    assert result["digest"] == built_demo.layout.resolve(built_demo.platform_ref).digest
    subprocess.run([dest_path / "bin" / "python", "-c", "import alpha"], check=True)


def test_connection_cut_mid_pull_is_retried(
    open_registry: RegistryServer, built_demo: BuiltDemo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = RegistryRef(registry=open_registry.host, repository="cut")
    publish_layout(built_demo.layout, [built_demo.platform_ref, "demo:1.0"], dest, client_for(open_registry))
    # The relay drops its connections once, mid layers; the registry stays up.
    half = sum(layer.size for layer in built_demo.layers()) // 2
    relay = Relay(open_registry.host, direction="down", after=half, trip=lambda: None)
    try:
        argv = install_argv(f"{relay.host}/cut/demo:1.0", tmp_path, "--insecure", "--json")
        code = venv_pull_main.main(argv)
        out, err = capsys.readouterr()
    finally:
        relay.close()
    assert relay.tripped.is_set()
    assert code == 0, err
    assert json.loads(out)["changed"] is True
    assert "retrying in" in err


def test_corrupt_blob_in_registry_refuses_the_install_and_changes_nothing(
    own_registry: RegistryServer,
    built_demo: BuiltDemo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = RegistryRef(registry=own_registry.host, repository="corrupt")
    publish_layout(built_demo.layout, [built_demo.platform_ref, "demo:1.0"], dest, client_for(own_registry))
    ref = f"{own_registry.host}/corrupt/demo:1.0"
    assert (
        venv_pull_main.main(install_argv(ref, tmp_path, "--insecure", "--json", cache=tmp_path / "cache-a"))
        == 0
    )
    capsys.readouterr()
    dest_path = tmp_path / "venvs" / "demo"
    before = (os.readlink(dest_path), generations(tmp_path), snapshot(tmp_path / "facts"))

    beta = next(d for d in built_demo.layers() if (d.title or "").startswith("beta-"))  # pulled by an install
    data_file = own_registry.blob_data_path(beta.digest)
    with data_file.open("r+b") as fh:
        fh.seek(beta.size // 2)
        byte = fh.read(1)
        fh.seek(beta.size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))

    # A fresh cache and --rebuild: every blob comes from the registry again, into a new generation.
    cache_b = tmp_path / "cache-b"
    argv = ["-q", *install_argv(ref, tmp_path, "--insecure", "--json", "--rebuild", cache=cache_b)]
    assert venv_pull_main.main(argv) == 1
    out, err = capsys.readouterr()
    [line] = err.splitlines()  # -q: the error line alone
    assert json.loads(out) == {"error": line.removeprefix("venv-pull: error: "), "schema": 1}  # --json
    assert line.startswith("venv-pull: error: ")
    assert beta.digest in line and "digest mismatch" in line
    assert (os.readlink(dest_path), generations(tmp_path), snapshot(tmp_path / "facts")) == before
    assert beta.digest.split(":")[1] not in [p.name for p in blob_files(cache_b)]
    subprocess.run([dest_path / "bin" / "python", "-c", "import alpha, beta"], check=True)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
