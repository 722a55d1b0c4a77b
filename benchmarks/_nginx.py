"""Debian's nginx for the fleet bench: an origin serving an OCI layout over HTTP, and caching
proxies in front of it (``proxy_cache`` with ``proxy_cache_lock``), each with its own prefix folder,
access log and free 127.0.0.1 port, stopped by PID."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _procs import BenchError, fresh
from _servers import SERVER_DEADLINE, free_port

NGINX_BIN = "/usr/sbin/nginx"
LOG_DEADLINE = 20.0

# One line per answer, written when the answer is done: method, path, status, body bytes sent.
_LOG_FORMAT = "log_format plain '$request_method $uri $status $body_bytes_sent';"
_BLOB_LINE = re.compile(r"^GET /\S*/blobs/sha256/([0-9a-f]{64}) 200 (\d+)$")


@dataclass
class Nginx:
    """A running nginx on ``host`` (``127.0.0.1:PORT``)."""

    host: str
    prefix: Path
    proc: subprocess.Popen[bytes]

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start(prefix: Path, server_block: str, http_extra: str = "") -> Nginx:
    if not Path(NGINX_BIN).exists():
        raise BenchError(f"{NGINX_BIN} is missing: apt-get install nginx")
    fresh(prefix).mkdir(parents=True)
    (prefix / "tmp").mkdir()
    port = free_port()
    config = f"""
daemon off;
user root;  # the bench's folders are root's
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    {_LOG_FORMAT}
    access_log {prefix}/access.log plain;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    types {{ application/json json; }}
    default_type application/octet-stream;
    {http_extra}
    server {{
        listen 127.0.0.1:{port};
        {server_block}
    }}
}}
"""
    (prefix / "nginx.conf").write_text(config)
    argv = [NGINX_BIN, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(prefix / "nginx.conf")]
    with (prefix / "stderr.log").open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Nginx(host=f"127.0.0.1:{port}", prefix=prefix, proc=proc)
    deadline = time.monotonic() + SERVER_DEADLINE
    while True:
        if proc.poll() is not None:
            raise BenchError(f"nginx exited with {proc.returncode}:\n{_tail(prefix)}")
        try:
            with urllib.request.urlopen(f"http://{server.host}/", timeout=2):
                return server
        except urllib.error.HTTPError:
            return server  # it answers: up
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise BenchError(
                f"nginx on {server.host} did not answer within {SERVER_DEADLINE:g} s:\n{_tail(prefix)}"
            )
        time.sleep(0.05)


def _tail(prefix: Path) -> str:
    return "\n".join(
        (prefix / name).read_text(errors="replace")[-2000:]
        for name in ("stderr.log", "error.log")
        if (prefix / name).exists()
    )


def start_origin(prefix: Path, *, layout: Path, path: str) -> Nginx:
    """Serve the layout folder ``layout`` at ``http://HOST/<path>/``."""
    return _start(prefix, f"location /{path}/ {{ alias {layout}/; }}")


def start_cache(prefix: Path, *, origin: Nginx) -> Nginx:
    """Start a caching proxy of ``origin``: blobs (named by digest) kept for a day; index.json,
    whose tags move, for a minute; concurrent misses of one URL merged into one origin request."""
    zone = f"proxy_cache_path {prefix}/cache levels=1:2 keys_zone=layout:10m max_size=20g inactive=1d use_temp_path=off;"
    common = f"""
            proxy_pass http://{origin.host};
            proxy_cache layout;
            proxy_cache_key $uri;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10m;
            proxy_cache_lock_age 10m;"""
    block = f"""
        location ~ /index\\.json$ {{{common}
            proxy_cache_valid 200 1m;
        }}
        location / {{{common}
            proxy_cache_valid 200 1d;
        }}"""
    return _start(prefix, block, zone)


class OriginLog:
    """The blob bytes an nginx origin served since a mark, read from its own access log."""

    def __init__(self, server: Nginx) -> None:
        self.server = server
        self._start = 0

    def mark(self) -> None:
        self._start = self._logged_offset()

    def blob_bytes(self, digests: set[str]) -> int:
        """Return the bytes of ``digests`` served since :meth:`mark` (every answer so far is logged)."""
        end = self._logged_offset()
        text = self.server.access_log.read_bytes()[self._start : end].decode(errors="replace")
        found = [
            m for m in map(_BLOB_LINE.match, text.splitlines()) if m and f"sha256:{m.group(1)}" in digests
        ]
        return sum(int(m.group(2)) for m in found)

    def _logged_offset(self) -> int:
        """Ask a marker request and return the log's size once it is logged: nginx logs a request
        when it is done, so every answer finished before is in the log by then."""
        token = secrets.token_hex(8)
        try:
            with urllib.request.urlopen(f"http://{self.server.host}/bench-mark-{token}", timeout=5):
                pass
        except urllib.error.HTTPError:
            pass  # a 404, logged
        except OSError as exc:
            raise BenchError(f"origin {self.server.host}: marker request failed: {exc}") from exc
        deadline = time.monotonic() + LOG_DEADLINE
        while True:
            data = self.server.access_log.read_bytes() if self.server.access_log.exists() else b""
            at = data.find(token.encode())
            if at >= 0 and data.find(b"\n", at) >= 0:
                return data.find(b"\n", at) + 1
            if time.monotonic() > deadline:
                raise BenchError(f"origin {self.server.host} never logged marker {token}")
            time.sleep(0.02)
