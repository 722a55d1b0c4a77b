"""``--username`` with ``--password-stdin`` on the command lines, against registries that need a login.

The password must reach the registry and nothing else: not the output (even with ``-v``), not
a file under HOME, the cache, the venv or the facts.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import pytest

from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.publish import publish_layout
from venvship.oci.reference import RegistryRef

from ._pki import PASSWORD, USER
from ._support import RegistryServer, client_for, install_argv
from .conftest import BuiltDemo

pytestmark = pytest.mark.registry

WRONG = "not-" + PASSWORD
Main = Callable[[Sequence[str]], int]
Runner = Callable[[Main, list[str], str], tuple[int, str, str]]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run a CLI ``main`` in-process with ``stdin`` as its standard input; return (code, out, err)."""

    def call(main: Main, argv: list[str], stdin: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return call


def secrets_in_files(folder: Path, *passwords: str) -> list[Path]:
    """Return the files under ``folder`` holding a password, plain or as Basic auth's base64."""
    needles = [p.encode() for p in passwords]
    needles += [base64.b64encode(f"{USER}:{p}".encode()) for p in passwords]
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink() and any(n in path.read_bytes() for n in needles)
    ]


def login_files(home: Path) -> list[Path]:
    """Return the Docker/podman credential stores under ``home`` (a client that "logs in" writes one).

    (pip runs ``rustc --version`` for its user agent, and rustup may leave its settings in HOME:
    other files there are not the question.)
    """
    places = [home / ".docker", home / ".config" / "containers", home / ".local" / "share" / "containers"]
    return [f for place in places if place.exists() for f in place.rglob("*")]


def publish_demo(server: RegistryServer, built: BuiltDemo, namespace: str) -> str:
    dest = RegistryRef(registry=server.host, repository=namespace)
    publish_layout(built.layout, ["demo:1.0"], dest, client_for(server))
    return f"{server.host}/{namespace}/demo:1.0"


@pytest.mark.parametrize("variant", ["htpasswd", "token"])
def test_venv_pull_logs_in_with_password_on_stdin(
    variant: str,
    request: pytest.FixtureRequest,
    built_demo: BuiltDemo,
    tmp_path: Path,
    home_dir: Path,
    run: Runner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{variant}_registry")
    ref = publish_demo(server, built_demo, "login")
    argv = [
        "-v",
        *install_argv(ref, tmp_path, "--insecure", "--json", "--username", USER, "--password-stdin"),
    ]
    code, out, err = run(venv_pull_main.main, argv, PASSWORD + "\n")
    assert code == 0, err
    assert json.loads(out)["changed"] is True
    logged = caplog.text + err
    assert "GET " in logged  # -v really logged the requests ...
    assert PASSWORD not in out + logged  # ... and never the password
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in logged
    python = tmp_path / "venvs" / "demo" / "bin" / "python"
    subprocess.run([python, "-c", "import alpha"], check=True)
    assert secrets_in_files(tmp_path, PASSWORD) == []
    assert login_files(home_dir) == []


def test_venv_pull_wrong_password_is_one_error_and_writes_nothing(
    htpasswd_registry: RegistryServer,
    built_demo: BuiltDemo,
    tmp_path: Path,
    home_dir: Path,
    run: Runner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = publish_demo(htpasswd_registry, built_demo, "wrong")
    argv = install_argv(ref, tmp_path, "--insecure", "--username", USER, "--password-stdin")
    code, out, err = run(venv_pull_main.main, argv, WRONG + "\n")
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(
        f"venv-pull: error: {htpasswd_registry.host}/wrong/demo: authentication failed (401)"
    )
    assert "check credentials" in line

    code, out, err = run(venv_pull_main.main, ["-v", *argv], WRONG + "\n")
    assert code == 1
    logged = caplog.text + err
    assert "GET " in logged
    assert WRONG not in out + logged
    assert base64.b64encode(f"{USER}:{WRONG}".encode()).decode() not in logged

    assert not (tmp_path / "venvs").exists()
    assert not (tmp_path / "facts").exists()
    blobs = tmp_path / "blobcache" / "blobs"
    assert [p for p in blobs.rglob("*") if p.is_file()] == []
    assert secrets_in_files(tmp_path, WRONG) == []
    assert login_files(home_dir) == []


def test_venvship_publish_wrong_password_publishes_nothing(
    htpasswd_registry: RegistryServer, built_demo: BuiltDemo, tmp_path: Path, home_dir: Path, run: Runner
) -> None:
    dest = f"{htpasswd_registry.host}/wrongpub"
    argv = [
        "publish",
        f"oci:{built_demo.layout.root}",
        dest,
        "--insecure",
        "--username",
        USER,
        "--password-stdin",
    ]
    code, out, err = run(venvship_main.main, argv, WRONG + "\n")
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"venvship: error: {dest}/demo: authentication failed (401)")
    assert client_for(htpasswd_registry).list_tags("wrongpub/demo") == []
    assert secrets_in_files(tmp_path, WRONG) == []
    assert login_files(home_dir) == []


@pytest.mark.parametrize(
    ("extra", "stdin", "message"),
    [
        (["--username", USER], PASSWORD + "\n", "--username and --password-stdin go together"),
        (["--password-stdin"], PASSWORD + "\n", "--username and --password-stdin go together"),
        (["--username", USER, "--password-stdin"], "", "--password-stdin: no password on standard input"),
    ],
)
def test_venv_pull_login_usage_errors(
    extra: list[str], stdin: str, message: str, tmp_path: Path, run: Runner
) -> None:
    code, out, err = run(
        venv_pull_main.main, install_argv("127.0.0.1:9/x/demo:1.0", tmp_path, "--insecure", *extra), stdin
    )
    assert (code, out) == (2, "")
    assert err == f"venv-pull: error: {message}\n"
    assert not (tmp_path / "blobcache").exists()


def test_inspect_and_diff_log_in_with_password_on_stdin(
    htpasswd_registry: RegistryServer, built_demo: BuiltDemo, run: Runner
) -> None:
    ref = publish_demo(htpasswd_registry, built_demo, "look")
    login = ["--insecure", "--username", USER, "--password-stdin"]
    code, out, err = run(venvship_main.main, ["inspect", ref, "--json", *login], PASSWORD + "\n")
    assert code == 0, err
    [platform] = json.loads(out)["platforms"]
    assert {p["name"] for p in platform["packages"]} == {w.name for w in built_demo.config().lock}
    # One password on stdin serves both references of a diff.
    code, out, err = run(venvship_main.main, ["diff", ref, ref, "--json", *login], PASSWORD + "\n")
    assert code == 0, err
    assert json.loads(out)["platforms"] == {platform["key"]: []}
    code, out, err = run(venvship_main.main, ["inspect", ref, "--insecure"], "")
    assert code == 1 and "authentication" in err
