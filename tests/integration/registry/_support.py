"""Test helpers: a real docker-registry process on 127.0.0.1, registry clients, tiny artifacts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvship.artifact.documents import PlatformInfo, PythonInfo, VenvConfig, Wheel
from venvship.builder.package import write_to_layout
from venvship.oci.auth import Credentials
from venvship.oci.layout import Layout
from venvship.oci.registry import RegistryClient

from ._pki import PASSWORD, USER, TokenServer

REGISTRY_BIN = "/usr/bin/docker-registry"
START_DEADLINE = 20.0


# docker-registry's own word for the address it bound (with ", tls" after it when it serves TLS).
LISTENING = re.compile(r'msg="listening on 127\.0\.0\.1:(\d+)')


@dataclass
class RegistryServer:
    """One running ``docker-registry serve`` on 127.0.0.1, owned by the tests."""

    host: str  # 127.0.0.1:PORT
    root: Path  # storage rootdirectory
    log: Path
    proc: subprocess.Popen[bytes]
    tls_ca: Path | None = None
    token: TokenServer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def insecure(self) -> bool:
        return self.tls_ca is None

    def blob_data_path(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_registry(
    workdir: Path,
    *,
    auth: dict[str, Any] | None = None,
    tls: tuple[Path, Path, Path] | None = None,
    token: TokenServer | None = None,
    proxy: str | None = None,
) -> RegistryServer:
    """Start a registry with its own config and storage under ``workdir``; wait until ``/v2/`` answers.

    The registry binds a port of its own choosing (port 0) and its log says which: no port is
    freed here and bound later, when another run's server may have taken it.
    ``proxy``: the URL of the registry it is a pull-through cache of (``proxy.remoteurl``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    http_cfg: dict[str, Any] = {"addr": "127.0.0.1:0", "secret": secrets.token_hex(16)}
    if tls:
        http_cfg["tls"] = {"certificate": str(tls[1]), "key": str(tls[2])}
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
        "http": http_cfg,
    }
    if auth:
        config["auth"] = auth
    if proxy:
        config["proxy"] = {"remoteurl": proxy}
    (workdir / "config.json").write_text(json.dumps(config, indent=1))  # YAML accepts JSON
    log = workdir / "registry.log"
    proc = _serve(workdir / "config.json", log)
    port = _bound_port(proc, log, since=0)
    # A restart must come back on this port: the clients and the artifacts' refs name it.
    http_cfg["addr"] = f"127.0.0.1:{port}"
    (workdir / "config.json").write_text(json.dumps(config, indent=1))
    server = RegistryServer(
        host=f"127.0.0.1:{port}",
        root=workdir / "data",
        log=log,
        proc=proc,
        tls_ca=tls[0] if tls else None,
        token=token,
    )
    _wait_until_up(server)
    return server


def restart_registry(server: RegistryServer) -> None:
    """Start ``server`` again (after a test killed it) on the same port, config and storage."""
    server.stop()
    since = server.log.stat().st_size
    server.proc = _serve(server.root.parent / "config.json", server.log)
    port = _bound_port(server.proc, server.log, since=since)
    assert f"127.0.0.1:{port}" == server.host, (port, server.host)
    _wait_until_up(server)


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _bound_port(proc: subprocess.Popen[bytes], log: Path, *, since: int) -> int:
    """Return the port ``proc`` says (in ``log``, past offset ``since``) it listens on: ours, by
    construction. Waits at most :data:`START_DEADLINE`; the log's tail is in every failure."""
    deadline = time.monotonic() + START_DEADLINE
    while True:
        with log.open("rb") as fh:
            fh.seek(since)
            found = LISTENING.search(fh.read().decode(errors="replace"))
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=10)
            raise RuntimeError(
                f"docker-registry named no port within {START_DEADLINE}s:\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.05)


def _wait_until_up(server: RegistryServer, *, within: float = START_DEADLINE) -> None:
    """Wait until ``/v2/`` on the port our process bound answers as a registry (200, or 401 with
    auth): the port came from its own log, and the answer must carry the distribution API header."""
    scheme = "https" if server.tls_ca else "http"
    ctx = ssl.create_default_context(cafile=str(server.tls_ca)) if server.tls_ca else None
    deadline = time.monotonic() + within
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited with {server.proc.returncode}:\n{server.log.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(f"{scheme}://{server.host}/v2/", timeout=2, context=ctx) as resp:
                if resp.headers.get("Docker-Distribution-Api-Version") == "registry/2.0":
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and exc.headers.get("Docker-Distribution-Api-Version") == "registry/2.0":
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"docker-registry did not answer /v2/ within {within:g}s:\n{server.log.read_text()[-4000:]}"
            )
        time.sleep(0.1)


def htpasswd_auth(workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    line = subprocess.run(
        ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
    ).stdout.strip()
    (workdir / "htpasswd").write_text(line + "\n")
    return {"htpasswd": {"realm": "test-realm", "path": str(workdir / "htpasswd")}}


# -- artifacts ---------------------------------------------------------------------------------------


def random_blob(folder: Path, size: int) -> tuple[Path, str]:
    """Write ``size`` random bytes to a file in ``folder``; return (path, digest)."""
    folder.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    path = folder / f"blob-{secrets.token_hex(6)}"
    with path.open("wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            hasher.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return path, "sha256:" + hasher.hexdigest()


def make_venv_artifact(
    layout: Layout,
    workdir: Path,
    *,
    name: str = "demo",
    version: str = "1.0",
    distro: str = "debian-12",
    arch: str = "amd64",
    abi: str = "cp311",
    wheels: list[tuple[str, bytes]] | None = None,
    immutable_tags: bool = False,
) -> str:
    """Write a small per-platform venvship artifact into ``layout``; return its platform tag."""
    wheels = wheels or [(f"pkg{i}-1.0-py3-none-any.whl", os.urandom(2048 + i)) for i in range(3)]
    files = {}
    locked = []
    workdir.mkdir(parents=True, exist_ok=True)
    for filename, data in wheels:
        path = workdir / filename
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        files["sha256:" + sha] = path
        locked.append(
            Wheel(name=filename.split("-")[0], version="1.0", filename=filename, sha256=sha, size=len(data))
        )
    config = VenvConfig(
        name=name,
        version=version,
        recipe_digest="sha256:" + "0" * 64,
        install_path=f"/opt/{name}",
        python=PythonInfo(implementation="cpython", version="3.11.2", abi=abi, executable="python3"),
        platform=PlatformInfo(os="linux", architecture=arch, distro=distro, glibc="2.36", distro_bound=False),
        lock=tuple(locked),
        tools=(),
        install_tool="pip",
        requirements=("pkg0",),
        constraints=(),
        global_constraints=(),
        distro_package_state="present",
        distro_cache_valid_time=600,
        install_distro_packages=(),
        install_pip_args=(),
        install_env={},
        symlink_system_packages=(),
        facts=(),
        builder={"venvship": "test"},
        provenance={},
    )
    return write_to_layout(layout, config, files, immutable_tags=immutable_tags).platform_tag


def client_for(server: RegistryServer, **kwargs: Any) -> RegistryClient:
    """Return a client for ``server`` with the right scheme, CA and (if it needs them) credentials."""
    kwargs.setdefault("insecure", server.insecure)
    if server.tls_ca is not None:
        kwargs.setdefault("ca_file", str(server.tls_ca))
    if server.extra.get("needs_auth"):
        kwargs.setdefault("credentials", Credentials(username=USER, password=PASSWORD))
    kwargs.setdefault("retries", 1)
    kwargs.setdefault("backoff", 0.05)
    return RegistryClient(server.host, **kwargs)


# -- what the registry saw -----------------------------------------------------------------------------

_MARK = "venvship-test-mark"
_LOGGED = re.compile(r'http\.request\.method=(\w+) .*http\.request\.uri="?([^" ]+)"? .*useragent=venvship\b')


def log_mark(server: RegistryServer) -> int:
    """Send a marker request and wait until the registry logged it; return the log size just after it.

    The registry logs each request after answering it, so every request answered before the
    marker was sent is in the log before this offset.
    """
    token = secrets.token_hex(8)
    scheme = "https" if server.tls_ca else "http"
    ctx = ssl.create_default_context(cafile=str(server.tls_ca)) if server.tls_ca else None
    try:
        with urllib.request.urlopen(f"{scheme}://{server.host}/v2/?{_MARK}={token}", timeout=5, context=ctx):
            pass
    except urllib.error.HTTPError:
        pass  # 401 on registries with auth: logged all the same
    deadline = time.monotonic() + START_DEADLINE
    while True:
        data = server.log.read_bytes()
        at = data.find(token.encode())
        end = data.find(b"\n", at)
        if at >= 0 and end >= 0:
            return end + 1
        if time.monotonic() > deadline:
            raise RuntimeError(f"the registry never logged marker {token}:\n{data[-4000:].decode()}")
        time.sleep(0.02)


def requests_between(server: RegistryServer, start: int) -> list[tuple[str, str]]:
    """Return (method, path) of each request venvship sent that the registry logged after ``start``."""
    end = log_mark(server)
    lines = server.log.read_bytes()[start:end].decode(errors="replace").splitlines()
    found = [_LOGGED.search(line) for line in lines if 'msg="response completed"' in line]
    return [(m.group(1), m.group(2)) for m in found if m]


def cli_registry_args(server: RegistryServer) -> list[str]:
    """Return the command-line options that reach ``server`` (transport, trust, login on stdin)."""
    args = ["--insecure"] if server.tls_ca is None else ["--ca-file", str(server.tls_ca)]
    if server.extra.get("needs_auth"):
        args += ["--username", USER, "--password-stdin"]
    return args


def install_argv(ref: str, tmp_path: Path, *extra: str, cache: Path | None = None) -> list[str]:
    """Return ``venv-pull install REF``'s arguments for a test: the destination, blob cache and
    facts under ``tmp_path``, no distro packages, then ``extra``."""
    return [
        "install",
        ref,
        "--dest",
        str(tmp_path / "venvs" / "demo"),
        "--cache",
        str(cache or tmp_path / "blobcache"),
        "--facts-dir",
        str(tmp_path / "facts"),
        "--no-distro-packages",
        *extra,
    ]
