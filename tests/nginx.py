"""Debian's nginx on 127.0.0.1 serving a folder, for the tests of layouts on a web server.

Each server has its own prefix folder (config, logs, temp files, pid) under the test's tmp, a free
port found by binding port 0 (nginx cannot report a port of its own choosing, so a start that
loses the port to another process is tried again on a new one), a bounded readiness wait that
shows the error log when it expires, and is stopped by its PID.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .needs import require_program

NGINX = "/usr/sbin/nginx"
START_DEADLINE = 20.0

# One line per answer: what the access-log readers of the tests parse.
_LOG_FORMAT = "log_format plain '$request_method $uri $status $body_bytes_sent';"


@dataclass
class Nginx:
    """A running nginx: ``url`` is ``http://127.0.0.1:PORT``; ``access_log`` lists its answers."""

    prefix: Path
    port: int
    proc: subprocess.Popen[bytes]
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    def answers(self) -> list[tuple[str, str, int]]:
        """Return (method, path, status) of each request answered so far."""
        if not self.access_log.exists():
            return []
        out = []
        for line in self.access_log.read_text().splitlines():
            method, path, status, _ = line.split(" ")
            out.append((method, path, int(status)))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_nginx(
    prefix: Path, *, root: Path, locations: str = "", tls: bool = False, http_extra: str = ""
) -> Nginx:
    """Start nginx serving ``root`` (``locations``: more directives and ``location`` blocks of the
    server; ``tls``: listen for HTTPS, ``locations`` naming the certificate and key; ``http_extra``:
    directives of the ``http`` block, such as a ``proxy_cache_path``).

    Example: ``start_nginx(tmp_path / "web", root=tmp_path / "www")``
    """
    require_program(NGINX, package="nginx")
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    for attempt in range(5):
        port = _free_port()
        config = f"""
daemon off;
# As root, the workers stay root: the tests' folders are root's, 0700 above the layout.
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
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
        listen 127.0.0.1:{port}{" ssl" if tls else ""};
        root {root};
        {locations}
    }}
}}
"""
        conf = prefix / "nginx.conf"
        conf.write_text(config)
        log = prefix / "stderr.log"
        with log.open("ab") as out:
            argv = [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = Nginx(prefix=prefix, port=port, proc=proc, tls=tls)
        if _wait_until_up(server):
            return server
        server.stop()
        errors = (prefix / "error.log").read_text(errors="replace") if (prefix / "error.log").exists() else ""
        if "Address already in use" not in errors or attempt == 4:
            raise RuntimeError(f"nginx did not start on port {port}:\n{log.read_text()}\n{errors[-3000:]}")
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_until_up(server: Nginx) -> bool:
    """Return True once ``server`` answers, False if it exits; raise when :data:`START_DEADLINE` passes."""
    deadline = time.monotonic() + START_DEADLINE
    probe = f"http://127.0.0.1:{server.port}/"  # plain HTTP to a TLS port: nginx answers 400
    while True:
        if server.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any answer (403, 404): up
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            errors = server.prefix / "error.log"
            raise RuntimeError(
                f"nginx on {server.url} did not answer within {START_DEADLINE:g} s:\n"
                + (errors.read_text(errors="replace")[-3000:] if errors.exists() else "")
            )
        time.sleep(0.05)


__all__ = ["NGINX", "Nginx", "start_nginx"]
