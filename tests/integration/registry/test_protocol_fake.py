"""Protocol corners docker-registry 2.8 cannot show: pagination, Retry-After, redirects, expiry.

A scripted stdlib HTTP server on 127.0.0.1 plays the registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.servers import dead_port
from venvship.errors import ArtifactError, RegistryError
from venvship.oci._http import MIN_SPEED
from venvship.oci.auth import Credentials
from venvship.oci.layout import Layout
from venvship.oci.mirrors import Mirror, MirrorSource
from venvship.oci.reference import RegistryRef, parse_ref
from venvship.oci.registry import RegistryClient, RegistrySource

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Fake:
    host: str
    seen: list[Seen] = field(default_factory=list)
    route: Callable[[Seen], Reply] = lambda s: (404, {}, b"")

    def client(self, **kwargs: Any) -> RegistryClient:
        kwargs.setdefault("insecure", True)
        kwargs.setdefault("backoff", 0.01)
        kwargs.setdefault("max_backoff", 0.2)
        kwargs.setdefault("retries", 2)
        return RegistryClient(self.host, **kwargs)


def _serve() -> tuple[http.server.ThreadingHTTPServer, Fake]:
    fake = Fake(host="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            seen = Seen(self.command, self.path, dict(self.headers.items()))
            fake.seen.append(seen)
            status, headers, body = fake.route(seen)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.host = f"127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, fake


@pytest.fixture
def fakes() -> Iterator[Callable[[], Fake]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def make() -> Fake:
        server, fake = _serve()
        servers.append(server)
        return fake

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def test_tags_follow_link_pagination(fakes: Callable[[], Fake]) -> None:
    fake = fakes()

    def route(s: Seen) -> Reply:
        if s.path == "/v2/r/tags/list?n=1000":
            return 200, {"Link": '</v2/r/tags/list?last=b&n=1000>; rel="next"'}, b'{"tags":["a","b"]}'
        if s.path == "/v2/r/tags/list?last=b&n=1000":
            return 200, {}, b'{"tags":["c"]}'
        return 404, {}, b""

    fake.route = route
    assert fake.client().list_tags("r") == ["a", "b", "c"]


def test_retry_after_is_honoured_and_capped(
    fakes: Callable[[], Fake], caplog: pytest.LogCaptureFixture
) -> None:
    fake = fakes()
    raw = b'{"schemaVersion":2,"manifests":[]}'

    def route(s: Seen) -> Reply:
        if len(fake.seen) <= 2:
            return 503, {"Retry-After": "3600"}, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}'
        return 200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, raw

    fake.route = route
    start = time.monotonic()
    media, got, _ = fake.client().get_manifest("r", "1.0")
    assert time.monotonic() - start < 2  # Retry-After 3600 capped at max_backoff
    assert (media, got, len(fake.seen)) == ("application/vnd.oci.image.index.v1+json", raw, 3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "503" in warnings[0] and "UNAVAILABLE: busy" in warnings[0]


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retried(fakes: Callable[[], Fake], status: int) -> None:
    fake = fakes()
    fake.route = lambda s: (status, {}, b'{"errors":[{"code":"DENIED","message":"no"}]}')
    with pytest.raises(RegistryError) as info:
        fake.client(retries=4).get_manifest("r", "1.0")
    assert info.value.status == status and len(fake.seen) == 1
    assert str(info.value).startswith(f"{fake.host}/r: ") and "manifest 1.0" in str(info.value)


def test_server_errors_give_up_after_bounded_retries(fakes: Callable[[], Fake]) -> None:
    fake = fakes()
    fake.route = lambda s: (500, {}, b"boom")
    with pytest.raises(RegistryError, match=r"gave up after 3 attempts") as info:
        fake.client(retries=2).head_blob("r", "sha256:" + "0" * 64)
    assert info.value.status == 500 and len(fake.seen) == 3


def test_redirects_never_carry_credentials_elsewhere(fakes: Callable[[], Fake], tmp_path: Path) -> None:
    registry, storage = fakes(), fakes()
    data = b"blob bytes"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def route(s: Seen) -> Reply:
        if "Authorization" not in s.headers:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        return 307, {"Location": f"http://{storage.host}/signed/blob?sig=1"}, b""

    registry.route = route
    storage.route = lambda s: (200, {}, data)
    client = registry.client(credentials=Credentials(username="u", password="p"))
    cache = Layout.create(tmp_path / "cache")
    assert client.fetch_blob("r", digest, len(data), cache)
    assert cache.blob_path(digest).read_bytes() == data
    assert [s.path for s in storage.seen] == ["/signed/blob?sig=1"]
    assert "Authorization" not in storage.seen[0].headers


def test_expired_token_is_refreshed_once(fakes: Callable[[], Fake]) -> None:
    fake = fakes()
    issued: list[str] = []
    raw = b'{"schemaVersion":2,"manifests":[]}'

    def route(s: Seen) -> Reply:
        if s.path.startswith("/token"):
            issued.append(f"t{len(issued) + 1}")
            assert "scope=repository%3Ar%3Apull" in s.path
            return 200, {}, json.dumps({"token": issued[-1], "expires_in": 300}).encode()
        challenge = {"WWW-Authenticate": f'Bearer realm="http://{fake.host}/token",service="fake"'}
        # The first token "expires" after one use; the registry then wants the next one.
        if s.headers.get("Authorization") != f"Bearer t{max(1, len(issued))}" or (
            len(issued) == 1
            and sum(1 for x in fake.seen if x.headers.get("Authorization") == "Bearer t1") > 1
        ):
            return 401, challenge, b""
        return 200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, raw

    fake.route = route
    client = fake.client()
    client.get_manifest("r", "1")
    client.get_manifest("r", "1")  # t1 refused now: one new token, one retry
    assert issued == ["t1", "t2"]


def test_manifest_by_digest_must_match(fakes: Callable[[], Fake]) -> None:
    fake = fakes()
    fake.route = lambda s: (200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, b"{}")
    with pytest.raises(ArtifactError, match="registry sent a manifest with digest"):
        fake.client().get_manifest("r", "sha256:" + "1" * 64)


def test_a_busy_mirror_is_asked_again_and_a_dead_one_is_not(
    fakes: Callable[[], Fake], caplog: pytest.LogCaptureFixture
) -> None:
    """A pull-through cache that answers 503 while it fills (busy) keeps serving the host; a mirror
    that gives no answer at all is left out after one try. The mirror clients are the real ones
    ``Mirror.client`` makes; the origin and the busy mirror are scripted fakes."""
    raw = b'{"schemaVersion":2,"manifests":[]}'
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    origin, busy = fakes(), fakes()
    origin.route = lambda s: (200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, raw)
    busy.route = lambda s: (
        (503, {}, b"")
        if len(busy.seen) == 1
        else (200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, raw)
    )

    def source(mirror: str) -> MirrorSource:
        ref = parse_ref(f"{origin.host}/r:1.0")
        assert isinstance(ref, RegistryRef)
        location = Mirror(location=f"{mirror}/r", insecure=True)
        mirrored = RegistrySource(location.ref_for(ref, f"{origin.host}/r"), client=location.client())
        return MirrorSource(RegistrySource(ref, client=origin.client()), [mirrored])

    caplog.set_level(logging.WARNING)
    assert source(busy.host).get_manifest(digest)[1] == raw
    assert (len(busy.seen), origin.seen) == (2, [])
    assert not [r for r in caplog.records if "left out" in r.getMessage()]

    caplog.clear()
    with dead_port() as dead:  # refused at once
        assert source(dead).get_manifest(digest)[1] == raw
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"mirror {dead}/r left out" in warnings[0], warnings
    assert len(origin.seen) == 1


@pytest.mark.parametrize("where", ["headers", "body", "body, Connection: close"])
def test_a_registry_that_drips_is_cut_off(tmp_path: Path, where: str) -> None:
    """One byte per 0.1 s never trips a 0.5 s read timeout; the request's deadline (twice the
    timeout, plus the length at MIN_SPEED) ends it, also when the answer says "Connection: close"
    (http.client then hands the socket to the response). A raw socket plays the registry: the
    scripted HTTP server answers whole."""
    size = 64 << 10
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            close = "Connection: close\r\n" if "close" in where else ""
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n{close}\r\n".encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\n" if where == "headers" else head)
            with contextlib.suppress(OSError):
                give_up = time.monotonic() + 20  # a client without a deadline fails, not hangs
                while not stop.wait(0.1) and time.monotonic() < give_up:
                    conn.sendall(b"X")  # a header line, or the body, that never ends

    server = threading.Thread(target=drip, daemon=True)
    server.start()
    host = f"127.0.0.1:{listener.getsockname()[1]}"
    client = RegistryClient(host, insecure=True, timeout=0.5, retries=0)
    started = time.monotonic()
    try:
        with pytest.raises(RegistryError):
            client.fetch_blob("r", "sha256:" + "0" * 64, size, Layout.create(tmp_path / "cache"))
        spent = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
        server.join(5)
    allowed = 2 * 0.5 + (size / MIN_SPEED if where.startswith("body") else 0)
    assert allowed - 0.5 < spent < allowed + 2, spent
