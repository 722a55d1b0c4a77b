"""Failures a user must understand: bad credentials, untrusted TLS, a dying registry, corrupt blobs."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from venvship.errors import ArtifactError, BadReference, RegistryError
from venvship.oci.auth import Credentials
from venvship.oci.layout import Layout
from venvship.oci.reference import parse_ref
from venvship.oci.registry import RegistryClient

from ._pki import PASSWORD, USER
from ._support import RegistryServer, client_for, random_blob

pytestmark = pytest.mark.registry


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("variant", ["htpasswd", "token"])
def test_wrong_password_is_one_clear_error(
    variant: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    home_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{variant}_registry")
    wrong = "wrong-" + PASSWORD
    client = client_for(server, credentials=Credentials(username=USER, password=wrong), retries=3)
    path, digest = random_blob(tmp_path / "src", 100)
    caplog.set_level(logging.DEBUG, logger="venvship")
    with pytest.raises(RegistryError) as info:
        client.push_blob("secure/demo", path, digest, 100)
    message = str(info.value)
    assert "authentication failed (401)" in message and "check credentials" in message
    assert message.startswith(server.host)
    assert info.value.status == 401
    assert wrong not in caplog.text and "Authorization" not in caplog.text
    assert base64.b64encode(f"{USER}:{wrong}".encode()).decode() not in caplog.text
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    assert all_files(home_dir) == []  # nothing written: no config.json, no token cache


@pytest.mark.parametrize("variant", ["htpasswd", "token"])
def test_no_credentials_says_how_to_log_in(variant: str, request: pytest.FixtureRequest) -> None:
    server: RegistryServer = request.getfixturevalue(f"{variant}_registry")
    client = RegistryClient(server.host, insecure=True, retries=0)
    with pytest.raises(RegistryError, match=r"authentication required \(401\).*docker login"):
        client.get_manifest("secure/demo", "1.0")


def test_credentials_from_docker_config(
    htpasswd_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {htpasswd_registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    client = RegistryClient(htpasswd_registry.host, insecure=True)
    path, digest = random_blob(tmp_path / "src", 10)
    assert client.push_blob("secure/from-config", path, digest, 10) is True
    assert client.head_blob("secure/from-config", digest) == 10


def test_tls_needs_the_ca(
    tls_registry: RegistryServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = RegistryClient(tls_registry.host, retries=3)
    start = time.monotonic()
    with pytest.raises(RegistryError, match="TLS certificate not trusted") as caught:
        client.list_tags("x/y")
    # The hint names the options a user types, not the settings' names inside venvship.
    assert "--ca-file FILE" in str(caught.value) and "--insecure" in str(caught.value)
    assert "ca_file" not in str(caught.value) and "(insecure)" not in str(caught.value)
    assert time.monotonic() - start < 5  # not retried
    with pytest.raises(RegistryError, match="HTTP request to an HTTPS server"):
        RegistryClient(tls_registry.host, insecure=True, retries=0).list_tags("x/y")
    assert tls_registry.tls_ca is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.tls_ca))
    assert RegistryClient(tls_registry.host).list_tags("x/y") == []


def test_plain_http_registry_names_insecure(open_registry: RegistryServer) -> None:
    """A first try against a test registry without TLS: the error says what to pass."""
    with pytest.raises(
        RegistryError, match=r"TLS handshake failed .*needs --insecure \(a mirror: http://HOST"
    ):
        RegistryClient(open_registry.host, retries=0).list_tags("x/y")


def test_a_url_as_a_reference_names_the_option() -> None:
    """``http://HOST/REPO:TAG`` pasted from a browser: the error says to drop the scheme and which
    option makes plain HTTP, not "bad repository name"."""
    host = "127.0.0.1:5000"
    with pytest.raises(BadReference) as caught:
        parse_ref(f"http://{host}/fleet/demo:1.0")
    assert str(caught.value) == (
        f"http://{host}/fleet/demo:1.0: a reference has no scheme: use {host}/fleet/demo:1.0 and --insecure (plain HTTP)"
    )


class KillingReader:
    """A blob stream that kills the registry once ``after`` bytes have been sent."""

    def __init__(self, inner: BinaryIO, server: RegistryServer, after: int) -> None:
        self.inner, self.server, self.after, self.sent = inner, server, after, 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.sent += len(data)
        if self.sent > self.after and self.server.proc.poll() is None:
            self.server.proc.kill()
            self.server.proc.wait()
        return data

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.inner.seek(pos, whence)


def test_registry_killed_mid_push(
    own_registry: RegistryServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = 32 << 20
    path, digest = random_blob(tmp_path / "src", size)
    client = client_for(own_registry, retries=2, backoff=0.05, timeout=5)
    start = time.monotonic()
    with path.open("rb") as fh, pytest.raises(RegistryError) as info:
        client.push_blob("dying/demo", KillingReader(fh, own_registry, 4 << 20), digest, size)  # type: ignore[arg-type]
    assert time.monotonic() - start < 20
    assert "gave up after 3 attempts" in str(info.value)
    assert own_registry.host in str(info.value)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and all(r.levelno == logging.WARNING for r in retries)


def test_corrupt_blob_in_registry_is_refused(open_registry: RegistryServer, tmp_path: Path) -> None:
    client = client_for(open_registry)
    size = 1 << 20
    path, digest = random_blob(tmp_path / "src", size)
    client.push_blob("corrupt/demo", path, digest, size)
    data_file = open_registry.blob_data_path(digest)
    with data_file.open("r+b") as fh:
        fh.seek(size // 2)
        byte = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    cache = Layout.create(tmp_path / "cache")
    with pytest.raises(ArtifactError, match="digest mismatch"):
        client.fetch_blob("corrupt/demo", digest, size, cache)
    assert not cache.has_blob(digest)
    assert all_files(cache.root / "blobs") == []
    assert os.listdir(cache.root / "blobs" / "sha256") == []
