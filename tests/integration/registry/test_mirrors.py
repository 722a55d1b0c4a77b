"""``venv-pull install`` through mirrors: blobs and manifests by digest from the first mirror that
has them, the tag at the origin, a dead or lying mirror left out after one try, each mirror with
its own login and TLS. Real docker-registry processes: replicas (the same artifact published
there) and pull-through caches (``proxy.remoteurl``)."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.needs import require_python
from venvship.cli import venv_pull_main
from venvship.install.zipapp import build_zipapp

from ._fleet import REPO, TinyArtifact, blob_gets, start_cache, tiny_artifact
from ._pki import PASSWORD, USER
from ._support import RegistryServer, htpasswd_auth, install_argv, log_mark, requests_between, start_registry

pytestmark = pytest.mark.registry

Run = Callable[..., tuple[int, dict[str, Any], str]]
V1 = {"alpha": "1.0", "beta": "1.0", "gamma": "1.0"}
V2 = {"alpha": "1.0", "beta": "2.0", "gamma": "1.0"}  # one wheel changed


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``venv-pull install REF ARGS… --json -v`` (``pulled``: each blob) in-process for host ``name`` (its own dest and
    cache under tmp_path); return (exit code, the JSON, stderr)."""

    def call(ref: str, *args: str, name: str = "host", stdin: str = "") -> tuple[int, dict[str, Any], str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        argv = install_argv(ref, tmp_path / name, "--json", "-v", "--check-command", "true", *args)
        code = venv_pull_main.main(argv)
        out, err = capsys.readouterr()
        return code, json.loads(out) if code == 0 else {}, err

    return call


@pytest.fixture
def v1(tmp_path: Path, tool_wheels: Path) -> TinyArtifact:
    return tiny_artifact(tmp_path / "v1", tool_wheels, V1)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[RegistryServer]]:
    """Registries a test starts (with ``servers.append``), stopped at its end."""
    started: list[RegistryServer] = []
    yield started
    for server in started:
        server.stop()


def _start(servers: list[RegistryServer], server: RegistryServer) -> RegistryServer:
    servers.append(server)
    return server


def _repo(server: RegistryServer) -> str:
    return f"{server.host}/{REPO}/demo"


def test_a_mirror_path_on_the_command_line_means_what_it_means_in_registries_toml(
    tmp_path: Path, v1: TinyArtifact, servers: list[RegistryServer], run: Run
) -> None:
    """``--mirror HOST/PATH`` is ``prefix = "REGISTRY/PATH"``, ``location = "HOST/PATH"``: a cache
    holding the same names, as in the pull-through-cache how-to; not ``HOST/PATH/PATH/…``."""
    origin = _start(servers, start_registry(tmp_path / "origin"))
    ref = v1.publish(origin)
    cache = _start(servers, start_cache(tmp_path / "cache", origin))
    code, result, err = run(ref, "--insecure", "--mirror", f"http://{cache.host}/{REPO}")
    assert code == 0, err
    assert result["pulled"] == {d: _repo(cache) for d in v1.pulled_blobs()}
    # A path the reference is not under is one clear error before anything is pulled.
    code, _, err = run(ref, "--insecure", "--mirror", f"http://{cache.host}/elsewhere", name="other")
    assert code != 0
    assert f"--mirror {cache.host}/elsewhere: {origin.host}/{REPO}/demo is not under" in err
    assert "Traceback" not in err
    assert not (tmp_path / "other" / "venvs" / "demo").exists()


@pytest.mark.parametrize("kind", ["replica", "pull-through cache"])
def test_blobs_come_from_the_mirror_and_the_tag_from_the_origin(
    kind: str, tmp_path: Path, v1: TinyArtifact, servers: list[RegistryServer], run: Run
) -> None:
    origin = _start(servers, start_registry(tmp_path / "origin"))
    ref = v1.publish(origin)
    if kind == "replica":
        mirror = _start(servers, start_registry(tmp_path / "mirror"))
        v1.publish(mirror)
    else:
        mirror = _start(servers, start_cache(tmp_path / "mirror", origin))
    at_origin, at_mirror = log_mark(origin), log_mark(mirror)
    code, result, err = run(ref, "--insecure", "--mirror", f"http://{mirror.host}")
    assert code == 0, err
    assert result["digest"] == v1.digest
    # Every blob came from the mirror, and venv-pull asked the origin one question: the tag.
    assert result["pulled"] == {d: _repo(mirror) for d in v1.pulled_blobs()}
    assert requests_between(origin, at_origin) == [("GET", f"/v2/{REPO}/demo/manifests/1.0")]
    asked = requests_between(mirror, at_mirror)
    assert not [path for _, path in asked if path.endswith("/manifests/1.0")]  # never the tag there
    if kind == "pull-through cache":
        # The cache filled itself from the origin; a second host through it costs the origin nothing.
        assert {g.digest for g in blob_gets(origin, at_origin) if not g.by_venvship} == set(v1.pulled_blobs())
        at_origin = log_mark(origin)
        code, second, err = run(ref, "--insecure", "--mirror", f"http://{mirror.host}", name="second")
        assert code == 0, err
        assert set(second["pulled"].values()) == {_repo(mirror)}
        assert blob_gets(origin, at_origin) == []
    # A no-op asks the origin for the tag and no mirror anything.
    at_origin, at_mirror = log_mark(origin), log_mark(mirror)
    code, again, err = run(ref, "--insecure", "--mirror", f"http://{mirror.host}")
    assert (code, again["changed"], "pulled" in again) == (0, False, False), err
    assert requests_between(mirror, at_mirror) == []
    assert requests_between(origin, at_origin) == [("GET", f"/v2/{REPO}/demo/manifests/1.0")]


def test_a_stale_mirror_cannot_serve_an_old_tag(
    tmp_path: Path, tool_wheels: Path, v1: TinyArtifact, servers: list[RegistryServer], run: Run
) -> None:
    """The mirror still has 1.0 → v1; the origin moved 1.0 to v2: the origin's tag wins, the
    unchanged layers still come from the mirror, the changed one from the origin."""
    v2 = tiny_artifact(tmp_path / "v2", tool_wheels, V2)
    origin = _start(servers, start_registry(tmp_path / "origin"))
    mirror = _start(servers, start_registry(tmp_path / "mirror"))
    v1.publish(mirror)
    ref = v2.publish(origin)
    code, result, err = run(ref, "--insecure", "--mirror", f"http://{mirror.host}")
    assert code == 0, err
    assert result["digest"] == v2.digest
    changed = v2.layer("beta")
    assert result["pulled"][changed] == _repo(origin)
    assert result["pulled"][v2.layer("alpha")] == result["pulled"][v2.layer("gamma")] == _repo(mirror)
    # --mirror-tags lets the mirror answer the tag: the older artifact, still verified.
    code, stale, err = run(ref, "--insecure", "--mirror", f"http://{mirror.host}", "--mirror-tags", name="t")
    assert code == 0, err
    assert stale["digest"] == v1.digest
    assert set(stale["pulled"].values()) == {_repo(mirror)}


def _blackhole() -> tuple[socket.socket, socket.socket]:
    """Return a listener whose accept queue is full, and what fills it: connecting to it hangs
    (the kernel drops the SYN), as to a host that is down."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())
    return listener, filler


def test_a_dead_mirror_costs_its_connect_timeout_once(
    tmp_path: Path, v1: TinyArtifact, servers: list[RegistryServer], run: Run
) -> None:
    origin = _start(servers, start_registry(tmp_path / "origin"))
    mirror = _start(servers, start_registry(tmp_path / "mirror"))
    v1.publish(mirror)
    ref = v1.publish(origin)
    listener, filler = _blackhole()
    dead = f"127.0.0.1:{listener.getsockname()[1]}"
    live = f'[[registry.mirror]]\nlocation = "{mirror.host}/{REPO}"\ninsecure = true\n'
    timeout = f'[[registry.mirror]]\nlocation = "{dead}/{REPO}"\ninsecure = true\nconnect-timeout = 2\n'
    spent = {}
    try:
        for name, mirrors in (("live", live), ("dead", timeout + live)):
            conf = tmp_path / f"{name}.toml"
            conf.write_text(f'[[registry]]\nprefix = "{origin.host}/{REPO}"\n' + mirrors)
            started = time.monotonic()
            code, result, err = run(ref, "--insecure", "--registries-conf", str(conf), name=name)
            spent[name] = time.monotonic() - started
            assert code == 0, err
    finally:
        filler.close()
        listener.close()
    assert code == 0, err
    assert set(result["pulled"].values()) == {_repo(mirror)}
    assert err.count(f"mirror {dead}/{REPO}/demo left out for this run") == 1, err
    # Once: 2 s. Per request it would be a manifest, a config and three layers: 10 s and more.
    assert spent["dead"] - spent["live"] < 2 + 3, spent


def test_a_mirror_that_serves_wrong_bytes_is_left_out(
    tmp_path: Path, v1: TinyArtifact, servers: list[RegistryServer], run: Run
) -> None:
    origin = _start(servers, start_registry(tmp_path / "origin"))
    mirror = _start(servers, start_registry(tmp_path / "mirror"))
    v1.publish(mirror)
    ref = v1.publish(origin)
    lying = v1.layer("beta")
    data = mirror.blob_data_path(lying)
    data.write_bytes(bytes(len(data.read_bytes())))  # the same size, other bytes
    code, result, err = run(ref, "--insecure", "--mirror", f"http://{mirror.host}")
    assert code == 0, err
    assert result["pulled"][lying] == _repo(origin)
    assert err.count(f"mirror {_repo(mirror)} left out for this run") == 1, err
    assert lying in err


def test_a_digest_reference_installs_while_the_origin_is_down(
    tmp_path: Path, v1: TinyArtifact, servers: list[RegistryServer], run: Run
) -> None:
    origin = _start(servers, start_registry(tmp_path / "origin"))
    mirror = _start(servers, start_registry(tmp_path / "mirror"))
    v1.publish(mirror)
    v1.publish(origin)
    origin.stop()
    pinned = f"{_repo(origin)}@{v1.digest}"
    code, result, err = run(pinned, "--insecure", "--mirror", f"http://{mirror.host}")
    assert code == 0, err
    assert set(result["pulled"].values()) == {_repo(mirror)}
    # A tag needs the origin: one line says so, and what would do without it.
    code, _, err = run(f"{_repo(origin)}:1.0", "--insecure", "--mirror", f"http://{mirror.host}", name="tag")
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert f"cannot reach {origin.host}" in line and "tags resolve at the origin only" in line
    assert "--mirror-tags" in line


def test_each_mirror_has_its_own_login_and_tls(
    tmp_path: Path,
    v1: TinyArtifact,
    servers: list[RegistryServer],
    tls_registry: RegistryServer,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The origin wants a login (given on the command line); mirror one wants the same user and
    password but has no stored login for its host, so it is refused (the origin's login never goes
    to a mirror) and left out; mirror two speaks TLS with a CA of its own and serves. With a login
    stored for mirror one's host, mirror one serves."""
    origin = _start(servers, start_registry(tmp_path / "origin", auth=htpasswd_auth(tmp_path / "origin")))
    origin.extra["needs_auth"] = True
    locked = _start(servers, start_registry(tmp_path / "locked", auth=htpasswd_auth(tmp_path / "locked")))
    locked.extra["needs_auth"] = True
    for server in (origin, locked, tls_registry):
        v1.publish(server)
    assert tls_registry.tls_ca is not None
    conf = tmp_path / "registries.json"  # the JSON twin, as a Python 3.9 host writes it
    conf.write_text(
        json.dumps(
            {
                "registry": [
                    {
                        "prefix": origin.host,
                        "mirror": [
                            {"location": locked.host, "insecure": True},
                            {"location": tls_registry.host, "ca-file": str(tls_registry.tls_ca)},
                        ],
                    }
                ]
            }
        )
    )
    login = ["--insecure", "--username", USER, "--password-stdin", "--registries-conf", str(conf)]
    code, result, err = run(f"{_repo(origin)}:1.0", *login, stdin=PASSWORD + "\n")
    assert code == 0, err
    assert set(result["pulled"].values()) == {_repo(tls_registry)}
    assert f"mirror {_repo(locked)} left out for this run" in err and "401" in err
    auth = tmp_path / "auth.json"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth.write_text(json.dumps({"auths": {locked.host: {"auth": token}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    code, result, err = run(f"{_repo(origin)}:1.0", *login, stdin=PASSWORD + "\n", name="second")
    assert code == 0, err
    assert set(result["pulled"].values()) == {_repo(locked)}


def test_python39_zipapp_reads_the_json_mirror_configuration(
    tmp_path: Path, v1: TinyArtifact, servers: list[RegistryServer]
) -> None:
    """Python 3.9 has no tomllib: registries.toml is an error that names the JSON form, never
    ignored (the mirrors would silently be bypassed), and registries.json works."""
    py39 = require_python("3.9")
    origin = _start(servers, start_registry(tmp_path / "origin"))
    mirror = _start(servers, start_registry(tmp_path / "mirror"))
    v1.publish(mirror)
    ref = v1.publish(origin)
    pyz = build_zipapp(tmp_path / "dist" / "venv-pull.pyz")
    table = {"registry": [{"prefix": origin.host, "mirror": [{"location": mirror.host, "insecure": True}]}]}
    toml = tmp_path / "registries.toml"
    toml.write_text(
        f'[[registry]]\nprefix = "{origin.host}"\n[[registry.mirror]]\nlocation = "{mirror.host}"\n'
    )
    (tmp_path / "registries.json").write_text(json.dumps(table))
    argv = [str(py39), str(pyz), *install_argv(ref, tmp_path / "host", "--insecure", "--json")]
    proc = subprocess.run(
        [*argv, "--registries-conf", str(toml)], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 1
    assert (
        f"{toml}: this Python has no tomllib (3.11+); write the mirror configuration as JSON" in proc.stderr
    )
    proc = subprocess.run(
        [*argv, "--registries-conf", str(tmp_path / "registries.json"), "--check-command", "true"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["pulled_from"]) == {_repo(mirror)}


def test_json_counts_the_blobs_pulled_from_each_source_and_lists_them_only_with_v(
    tmp_path: Path, v1: TinyArtifact, servers: list[RegistryServer], capsys: pytest.CaptureFixture[str]
) -> None:
    origin = _start(servers, start_registry(tmp_path / "origin"))
    ref = v1.publish(origin)
    argv = install_argv(ref, tmp_path / "host", "--json", "--check-command", "true", "--insecure")
    assert venv_pull_main.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pulled_from"] == {_repo(origin): len(v1.pulled_blobs())}
    assert "pulled" not in result  # a digest per blob is for -v
