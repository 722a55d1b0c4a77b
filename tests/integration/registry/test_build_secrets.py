"""A build's secrets stay with venvship (#20): a dependency's build code cannot read the signing
key or the registry password (from its environment, or from its ancestors' ``/proc/<pid>/environ``
and ``/proc/<pid>/mem``), and ``--username``/``--password-stdin`` go to the ``--output`` registry
only, never to a ``--reuse-from`` registry elsewhere that asks for a login."""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.conftest import RecipeWriter
from tests.signing import make_key
from venvship.cli import venvship_main

from ._pki import PASSWORD, USER
from ._support import RegistryServer

pytestmark = pytest.mark.registry

# What a hostile sdist's setup.py does: look for the secrets in its own environment, then in the
# environment and the whole readable memory of each ancestor up to the test (which started the
# build and is not part of it); append what it found, and whom it looked at, to REPORT.
SNOOP = """
import os
from setuptools import setup

NEEDLES = {needles!r}
REPORT, STOP = {report!r}, {stop!r}
found, looked = [], []
for name, value in os.environ.items():
    if any(n.decode() in value for n in NEEDLES):
        found.append("own environment: " + name)
pid = os.getppid()
while pid > 1 and pid != STOP:
    looked.append(str(pid))
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            if any(n in f.read() for n in NEEDLES):
                found.append("%d environ" % pid)
    except OSError:
        pass
    try:
        with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
            for line in maps:
                span, perms = line.split()[:2]
                start, end = (int(x, 16) for x in span.split("-"))
                if not perms.startswith("r") or end - start > 1 << 30:
                    continue
                try:
                    mem.seek(start)
                    data = mem.read(end - start)
                except (OSError, ValueError, OverflowError):
                    continue
                if any(n in data for n in NEEDLES):
                    found.append("%d mem" % pid)
                    break
    except OSError:
        pass
    with open("/proc/%d/stat" % pid) as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
with open(REPORT, "a") as f:
    f.write("looked at " + " ".join(looked) + "\\n" + "".join("found " + x + "\\n" for x in found))
setup(name="snoop", version="1.0", packages=["snoop"])
"""


def _drop_box(tmp_path: Path) -> Path:
    """Return a folder anyone may write: as root, the build code runs as the build user."""
    box = tmp_path / "drop-box"
    box.mkdir()
    box.chmod(0o777)
    return box


def snoop_project(root: Path, needles: list[bytes], report: Path) -> Path:
    proj = root / "snoop-src"
    (proj / "snoop").mkdir(parents=True)
    (proj / "snoop" / "__init__.py").write_text("")
    text = SNOOP.format(needles=needles, report=str(report), stop=os.getpid())
    (proj / "setup.py").write_text(textwrap.dedent(text))
    return proj


def test_dependency_build_code_finds_neither_the_signing_key_nor_the_password(
    htpasswd_registry: RegistryServer, write_recipe: RecipeWriter, cache: Path, tmp_path: Path
) -> None:
    key = make_key(tmp_path / "keys", "ci")
    pem = key.private.read_text()
    key_line = pem.splitlines()[2].encode()  # the middle of the private key's base64
    report = _drop_box(tmp_path) / "report.txt"
    recipe = write_recipe(
        packages=[f"snoop @ {snoop_project(tmp_path, [PASSWORD.encode(), key_line], report).as_uri()}"]
    )
    # The signing how-to's command line, run as its own process as CI runs it.
    argv = [
        *(sys.executable, "-m", "venvship.cli.venvship_main", "build", str(recipe)),
        *("--output", f"{htpasswd_registry.host}/secrets", "--insecure", "--cache-dir", str(cache)),
        *("--username", USER, "--password-stdin", "--sign-key", "env://VENVSHIP_SIGNING_KEY"),
    ]
    env = {**os.environ, "VENVSHIP_SIGNING_KEY": pem}
    proc = subprocess.run(argv, input=PASSWORD + "\n", env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "signed with key" in proc.stdout + proc.stderr
    lines = report.read_text().splitlines()
    # setup.py ran (metadata, then the wheel) and looked at venvship among its ancestors; as root
    # it runs in a pid namespace of its own, where no ancestor beyond pip has a pid it could open.
    looked = [line.split()[2:] for line in lines if line.startswith("looked at ")]
    assert looked and (os.geteuid() == 0 or all(pids for pids in looked))
    assert [line for line in lines if line.startswith("found ")] == []


def test_the_ci_templates_password_variable_stays_out_of_dependency_build_code(
    htpasswd_registry: RegistryServer, write_recipe: RecipeWriter, cache: Path, tmp_path: Path
) -> None:
    """The CI templates' build step: the password sits in the job's environment (GitLab's
    CI_REGISTRY_PASSWORD and CI_JOB_TOKEN, GitHub's REGISTRY_PASSWORD) and reaches venvship on
    stdin. Children inherit venvship's environment: every variable holding it must be left out."""
    report = _drop_box(tmp_path) / "report.txt"
    recipe = write_recipe(
        packages=[f"snoop @ {snoop_project(tmp_path, [PASSWORD.encode()], report).as_uri()}"]
    )
    venvship = f"{sys.executable} -m venvship.cli.venvship_main"
    script = (
        f"printf '%s\\n' \"$CI_REGISTRY_PASSWORD\" | {venvship} build {recipe} --output "
        f"{htpasswd_registry.host}/ci --insecure --cache-dir {cache} --username {USER} --password-stdin"
    )
    env = {**os.environ, "CI_REGISTRY_PASSWORD": PASSWORD, "CI_JOB_TOKEN": PASSWORD}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = report.read_text().splitlines()
    assert any(line.startswith("looked at ") for line in lines)
    # The job's shell is an ancestor too: as root, a child without capabilities cannot read it.
    assert [line for line in lines if line.startswith("found ")] == []


@pytest.fixture
def login_recorder() -> Iterator[tuple[str, list[str | None]]]:
    """A registry on another port that asks every request for a Basic login; records what it got."""
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="elsewhere"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_output_password_never_goes_to_the_reuse_from_registry(
    htpasswd_registry: RegistryServer,
    login_recorder: tuple[str, list[str | None]],
    write_recipe: RecipeWriter,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere, seen = login_recorder
    argv = [
        *("build", str(write_recipe()), "--output", f"{htpasswd_registry.host}/out", "--insecure"),
        *("--reuse-from", f"{elsewhere}/old/demo:1.0", "--cache-dir", str(cache)),
        *("--username", USER, "--password-stdin"),
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    venvship_main.main(argv)  # whether the build goes on without the old artifact is not the point
    capsys.readouterr()
    assert seen, "the --reuse-from registry was never asked"
    assert [header for header in seen if header is not None] == []


NOXFILE = """
import nox
from venvship.noxplugin import build
from venvship.oci.auth import Credentials
from venvship.oci.source import Access


@nox.session(python=False)
def venvs(session):
    access = Access(insecure=True, credentials=Credentials(username={user!r}, password={password!r}))
    build(session, recipes=[{recipe!r}], output={output!r}, reuse_from={reuse!r}, cache={cache!r}, access=access)
"""


def test_the_nox_plugin_sends_the_output_password_nowhere_else(
    htpasswd_registry: RegistryServer,
    login_recorder: tuple[str, list[str | None]],
    write_recipe: RecipeWriter,
    cache: Path,
    tmp_path: Path,
) -> None:
    """``nox -s build`` keeps the CLI's rule: the credentials a noxfile gives are for the output
    registry, never for a ``reuse_from`` registry elsewhere that asks for a login."""
    elsewhere, seen = login_recorder
    noxfile = tmp_path / "noxfile.py"
    noxfile.write_text(
        NOXFILE.format(
            user=USER,
            password=PASSWORD,
            recipe=str(write_recipe()),
            output=f"{htpasswd_registry.host}/nox",
            reuse=f"{elsewhere}/old/demo:1.0",
            cache=str(cache),
        )
    )
    argv = [sys.executable, "-m", "nox", "-f", str(noxfile), "-s", "venvs", "--no-venv"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert seen, "the reuse_from registry was never asked"
    assert [header for header in seen if header is not None] == []
    # It asked for a login venvship did not have for that host: the session ends with that line.
    assert f"no credentials found for {elsewhere}" in proc.stdout + proc.stderr


def test_username_with_two_registries_and_no_destination_is_one_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    argv = ["diff", "127.0.0.1:9/a/demo:1", "127.0.0.1:10/b/demo:1", "--insecure", "--username", USER]
    assert venvship_main.main([*argv, "--password-stdin"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "venvship: error: --username: credentials are for one registry, and this command names several "
        "(127.0.0.1:10, 127.0.0.1:9); log in to each with docker login instead\n"
    )
