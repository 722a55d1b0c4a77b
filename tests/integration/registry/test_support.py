"""The test registry every registry test stands on is the one it started: the port is the one its
own process bound, and something else answering on a port does not pass for it."""

from __future__ import annotations

import http.server
import subprocess
import threading
from pathlib import Path

import pytest

from ._support import RegistryServer, _wait_until_up, start_registry

pytestmark = pytest.mark.registry


def _listening_inodes(port: int) -> set[str]:
    """Return the socket inodes listening on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if local == f"0100007F:{port:04X}" and state == "0A":  # 0A: LISTEN
            inodes.add(inode)
    return inodes


def test_the_registry_listens_on_the_port_its_process_bound(tmp_path: Path) -> None:
    server = start_registry(tmp_path / "reg")
    try:
        port = int(server.host.rpartition(":")[2])
        owned = {p.readlink().name for p in Path(f"/proc/{server.proc.pid}/fd").iterdir()}
        assert {f"socket:[{inode}]" for inode in _listening_inodes(port)} <= owned
        assert _listening_inodes(port)
    finally:
        server.stop()


class _Decoy(http.server.BaseHTTPRequestHandler):
    """Any web server that asks for credentials: a 401, but no registry behind it."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="elsewhere"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_401_from_something_else_is_not_taken_for_our_registry(tmp_path: Path) -> None:
    decoy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Decoy)
    threading.Thread(target=decoy.serve_forever, daemon=True).start()
    log = tmp_path / "registry.log"
    log.write_text("")
    # A live process stands in for the registry that never came up; the decoy holds its port.
    server = RegistryServer(
        host=f"127.0.0.1:{decoy.server_address[1]}",
        root=tmp_path / "data",
        log=log,
        proc=subprocess.Popen(["sleep", "60"]),
    )
    try:
        with pytest.raises(RuntimeError, match=r"docker-registry did not answer /v2/ within 1s"):
            _wait_until_up(server, within=1)
    finally:
        server.stop()
        decoy.shutdown()
        decoy.server_close()
