"""Small loopback servers for tests: a static file server (HTTP or HTTPS) and a forward proxy that
speaks plain ``GET http://…`` and ``CONNECT`` tunnels, recording what it was asked for.

Each listens on 127.0.0.1 on a port it binds itself, runs in a thread and stops with ``close()``;
``dead_port()`` is an address held where nothing answers.
"""

from __future__ import annotations

import contextlib
import http.server
import select
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping


@contextlib.contextmanager
def dead_port() -> Iterator[str]:
    """Yield ``127.0.0.1:PORT`` where a connection is refused at once, for the block's length.

    The port is bound by a socket held open and never listening: unlike a port freed before use,
    no other process (another run's server) can take it meanwhile and answer.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


class FileServer:
    """Serves ``files`` (URL path → bytes); any other path is a 404. ``tls``: (cert, key) for HTTPS.

    ``auth`` records each request's Authorization header (None without); ``drip`` > 0 sends a
    body one byte every ``drip`` seconds, as a server holding a client would.
    """

    def __init__(
        self, files: Mapping[str, bytes], *, tls: tuple[Path, Path] | None = None, drip: float = 0.0
    ) -> None:
        self.files = dict(files)
        self.requests: list[str] = []
        self.auth: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                outer.auth.append(self.headers.get("Authorization"))
                body = outer.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                if not drip:
                    self.wfile.write(body or b"")
                    return
                for n in range(len(body or b"")):
                    try:
                        self.wfile.write((body or b"")[n : n + 1])
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up
                    time.sleep(drip)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Proxy:
    """A forward proxy on loopback; ``seen`` lists each request line's target (URL or host:port)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append(self.path)
                try:
                    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        self.path, timeout=10
                    ) as resp:
                        body, status = resp.read(), resp.status
                except urllib.error.HTTPError as exc:
                    body, status = b"", exc.code
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_CONNECT(self) -> None:
                outer.seen.append(self.path)
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                sockets = [self.connection, upstream]
                try:
                    while True:
                        ready, _, _ = select.select(sockets, [], [], 10)
                        if not ready:
                            return
                        for sock in ready:
                            data = sock.recv(65536)
                            if not data:
                                return
                            (upstream if sock is self.connection else self.connection).sendall(data)
                finally:
                    upstream.close()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
