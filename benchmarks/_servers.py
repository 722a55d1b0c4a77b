"""Local servers for the benchmarks: Debian's docker-registry and a static HTTP server, each on a
free port of 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from _procs import Argv, BenchError, fresh

if sys.version_info >= (3, 11):
    pass
else:  # the project depends on tomli there
    pass

REGISTRY_BIN = "/usr/bin/docker-registry"
SERVER_DEADLINE = 20.0  # seconds a local server gets to answer before the bench gives up


# -- local servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A local server process on 127.0.0.1, stopped by its PID."""

    host: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start(
    argv: Argv, *, log: Path, probe: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )
    deadline = time.monotonic() + SERVER_DEADLINE
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{argv[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return proc
        except urllib.error.HTTPError:
            return proc  # it answers: up
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            proc.wait(timeout=10)
            raise BenchError(
                f"{probe} did not answer within {SERVER_DEADLINE:g} s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)


def start_registry(workdir: Path, *, proxy: str | None = None, log_level: str = "warn") -> Server:
    """Start Debian's docker-registry on a free 127.0.0.1 port with storage and config in ``workdir``.

    ``proxy``: the URL of the registry it is a pull-through cache of; ``log_level="info"`` logs
    every answer (method, path, bytes written).
    """
    if not Path(REGISTRY_BIN).exists():
        raise BenchError(f"{REGISTRY_BIN} is missing: apt-get install docker-registry")
    fresh(workdir).mkdir(parents=True)
    port = free_port()
    config = {
        "version": "0.1",
        "log": {"level": log_level, "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if proxy:
        config["proxy"] = {"remoteurl": proxy}
    (workdir / "config.yml").write_text(json.dumps(config, indent=1))  # YAML reads JSON
    log = workdir / "registry.log"
    proc = _start(
        [REGISTRY_BIN, "serve", workdir / "config.yml"], log=log, probe=f"http://127.0.0.1:{port}/v2/"
    )
    return Server(host=f"127.0.0.1:{port}", proc=proc, log=log)


def start_http(folder: Path, log: Path) -> Server:
    """Serve ``folder`` with ``python -m http.server`` on a free 127.0.0.1 port."""
    port = free_port()
    argv: list[str | os.PathLike[str]] = [
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        folder,
        str(port),
    ]
    proc = _start(argv, log=log, probe=f"http://127.0.0.1:{port}/")
    return Server(host=f"127.0.0.1:{port}", proc=proc, log=log)
