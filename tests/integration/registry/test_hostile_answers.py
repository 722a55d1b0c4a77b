"""What a registry's answers may do to the client (#10): a JSON answer nested 100,000 deep is one
error. Real loopback servers, TLS with a test CA; each records the requests (and headers) it got."""

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
from venvship.oci.auth import Credentials
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
