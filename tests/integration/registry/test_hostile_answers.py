"""What a registry's answers may do to the client (#10): send it from HTTPS down to plain HTTP
never, credentials only to the scheme, host and port they were given for, and a JSON answer nested
100,000 deep is one error. Real loopback servers, TLS with a test CA; each records the requests (and
headers) it got."""

from __future__ import annotations

import hashlib
import http.server
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from venvship.errors import RegistryError
from venvship.oci._connection import origin
from venvship.oci.auth import Credentials
from venvship.oci.layout import Layout
from venvship.oci.registry import RegistryClient

from ._pki import make_tls_certs

Reply = tuple[int, dict[str, str], bytes]
DATA = b"blob bytes"
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
BLOB_PATH = f"/v2/r/blobs/{DIGEST}"
CREDENTIALS = Credentials(username="u", password="p")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Server:
    """A scripted HTTP(S) server on 127.0.0.1: ``route`` answers, ``seen`` records."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    route: Callable[[Seen], Reply] = lambda s: (404, {}, b"")

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tls_certs(tmp_path_factory.mktemp("redirect-tls"))


@pytest.fixture
def servers(tls: tuple[Path, Path, Path]) -> Iterator[Callable[[bool], Server]]:
    started: list[http.server.ThreadingHTTPServer] = []

    def start(secure: bool) -> Server:
        server = Server()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen = Seen(self.command, self.path, dict(self.headers.items()))
                server.seen.append(seen)
                if self.headers.get("Content-Length"):
                    self.rfile.read(int(self.headers["Content-Length"]))
                status, headers, body = server.route(seen)
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

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if secure:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[1]), str(tls[2]))
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        server.url = f"{'https' if secure else 'http'}://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(httpd)
        return server

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def basic_then(reply: Callable[[Seen], Reply]) -> Callable[[Seen], Reply]:
    """A registry route: 401 with a Basic challenge until the client sends credentials."""
    return lambda s: (
        reply(s) if "Authorization" in s.headers else (401, {"WWW-Authenticate": 'Basic realm="r"'}, b"")
    )


def client(registry: Server, tls: tuple[Path, Path, Path]) -> RegistryClient:
    return RegistryClient(registry.host, ca_file=str(tls[0]), credentials=CREDENTIALS, retries=0)


def test_https_to_http_redirect_is_refused_and_plain_listener_sees_nothing(
    servers: Callable[[bool], Server], tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    registry, plain = servers(True), servers(False)
    # The same host and port would be a plain listener there in real life; here another port.
    registry.route = basic_then(lambda s: (307, {"Location": f"{plain.url}/blob?sig=secret"}, b""))
    plain.route = lambda s: (200, {}, DATA)
    with pytest.raises(RegistryError) as info:
        client(registry, tls).fetch_blob("r", DIGEST, len(DATA), Layout.create(tmp_path / "cache"))
    message = str(info.value)
    assert message == (
        f"{registry.host}: refusing a downgrade to plain HTTP ({plain.url}/blob); "
        "only a client made insecure for this registry speaks HTTP"
    )
    assert [s.headers.get("Authorization", "")[:6] for s in registry.seen] == ["", "Basic "]
    assert plain.seen == []


def test_redirects_keep_auth_on_the_same_origin_only_never_back_from_elsewhere(
    servers: Callable[[bool], Server], tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """registry → registry (same scheme, host, port: auth kept) → another port (dropped) → back to
    the registry (still dropped: that URL was the other server's choice)."""
    registry, storage = servers(True), servers(True)
    back = "/v2/r/a-path-storage-chose"

    def route(s: Seen) -> Reply:
        if s.path == BLOB_PATH and "Authorization" not in s.headers:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        if s.path == BLOB_PATH:
            return 307, {"Location": "/own/blob"}, b""
        if s.path == "/own/blob":
            return 307, {"Location": f"{storage.url}/hop?sig=1"}, b""
        return 200, {}, DATA

    registry.route = route
    storage.route = lambda s: (307, {"Location": f"{registry.url}{back}"}, b"")
    cache = Layout.create(tmp_path / "cache")
    assert client(registry, tls).fetch_blob("r", DIGEST, len(DATA), cache)
    assert cache.blob_path(DIGEST).read_bytes() == DATA
    auth = {s.path: s.headers.get("Authorization") for s in registry.seen[1:] + storage.seen}
    assert auth == {
        BLOB_PATH: CREDENTIALS.basic_header(),
        "/own/blob": CREDENTIALS.basic_header(),
        "/hop?sig=1": None,
        back: None,
    }


def test_upload_location_elsewhere_gets_no_auth(
    servers: Callable[[bool], Server], tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    registry, elsewhere = servers(True), servers(True)

    def route(s: Seen) -> Reply:
        if s.method == "HEAD":
            return 404, {}, b""
        return 202, {"Location": f"{elsewhere.url}/upload/1"}, b""

    registry.route = basic_then(route)
    elsewhere.route = lambda s: (201, {"Docker-Content-Digest": DIGEST}, b"")
    blob = tmp_path / "blob"
    blob.write_bytes(DATA)
    assert client(registry, tls).push_blob("r", blob, DIGEST, len(DATA))
    assert [s.method for s in elsewhere.seen] == ["PUT"]
    assert "Authorization" not in elsewhere.seen[0].headers


def test_plain_http_upload_location_is_refused(
    servers: Callable[[bool], Server], tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    registry, plain = servers(True), servers(False)
    registry.route = basic_then(
        lambda s: (404, {}, b"") if s.method == "HEAD" else (202, {"Location": f"{plain.url}/u"}, b"")
    )
    blob = tmp_path / "blob"
    blob.write_bytes(DATA)
    with pytest.raises(RegistryError, match="refusing a downgrade to plain HTTP"):
        client(registry, tls).push_blob("r", blob, DIGEST, len(DATA))
    assert plain.seen == []


def test_https_registry_refuses_a_plain_http_token_realm_even_without_credentials(
    servers: Callable[[bool], Server], tls: tuple[Path, Path, Path]
) -> None:
    registry, tokens = servers(True), servers(False)
    registry.route = lambda s: (
        401,
        {"WWW-Authenticate": f'Bearer realm="{tokens.url}/token",service="s"'},
        b"",
    )
    tokens.route = lambda s: (200, {}, b'{"token": "t"}')
    anonymous = RegistryClient(registry.host, ca_file=str(tls[0]), retries=0)  # HOME holds no logins
    with pytest.raises(RegistryError, match="refusing the plain-HTTP token realm"):
        anonymous.list_tags("r")
    assert tokens.seen == []


@pytest.mark.parametrize("answer", ["tags", "token"])
def test_deeply_nested_json_answer_is_one_error(
    servers: Callable[[bool], Server], tls: tuple[Path, Path, Path], answer: str
) -> None:
    registry = servers(True)
    deep = b'{"tags":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    if answer == "tags":
        registry.route = lambda s: (200, {}, deep)
    else:
        realm = f"{registry.url}/token"
        registry.route = lambda s: (
            (200, {}, deep)
            if s.path.startswith("/token")
            else (401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}, b"")
        )
    with pytest.raises(RegistryError) as info:
        client(registry, tls).list_tags("r")
    assert str(info.value).endswith("nested deeper than 64 levels"), str(info.value)


def test_origin_defaults_the_port_and_ignores_case() -> None:
    assert (
        origin("https://Registry.Example/v2/")
        == origin("https://registry.example:443/x")
        == (
            "https",
            "registry.example",
            443,
        )
    )
    assert origin("http://registry.example/") != origin("https://registry.example:80/")


def test_token_realm_on_another_host_gets_credentials_only_when_named(
    servers: Callable[[bool], Server],
) -> None:
    """A registry names any URL as its token realm: the login goes there only if the operator said so."""
    registry, tokens = servers(False), servers(False)
    port = tokens.host.rsplit(":", 1)[1]
    realm = f"http://localhost:{port}/token"  # the token server, under another host name
    registry.route = lambda s: (
        (200, {}, b'{"name": "r", "tags": []}')
        if s.headers.get("Authorization") == "Bearer t"
        else (401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}, b"")
    )
    tokens.route = lambda s: (200, {}, b'{"token": "t"}')

    def list_tags(*realm_hosts: str) -> list[str]:
        return RegistryClient(
            registry.host, insecure=True, credentials=CREDENTIALS, token_realm_hosts=realm_hosts, retries=0
        ).list_tags("r")

    assert list_tags() == []  # an anonymous token
    assert [s.headers.get("Authorization") for s in tokens.seen] == [None]
    assert list_tags("localhost") == []
    assert tokens.seen[-1].headers.get("Authorization") == CREDENTIALS.basic_header()
    # The registry's own host on another port is its own: no option needed (the usual token server).
    tokens.seen.clear()
    mine = f"http://127.0.0.1:{port}/token"
    registry.route = lambda s: (
        (200, {}, b'{"name": "r", "tags": []}')
        if s.headers.get("Authorization") == "Bearer t"
        else (401, {"WWW-Authenticate": f'Bearer realm="{mine}",service="s"'}, b"")
    )
    assert list_tags() == []
    assert tokens.seen[-1].headers.get("Authorization") == CREDENTIALS.basic_header()
