"""A constraints file fetched by URL is data: it reads no local file, names no source, carries no
option, has a deadline, and no credential of its URL is published. The servers here are the
attacker's (or a private host's): a local HTTP file server serving hand-written files."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.conftest import RecipeWriter
from tests.servers import FileServer
from venvship.builder.inputs import prepare
from venvship.builder.recipebuild import BuildOptions, build_recipe
from venvship.errors import RecipeError
from venvship.oci.layout import Layout
from venvship.recipe.recipefile import load_recipe

SECRET = "s3cr3t-deploy-token"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "NETRC"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/.netrc of the machine's


@pytest.fixture
def server() -> Iterator[FileServer]:
    s = FileServer({})
    yield s
    s.close()


def recipe_with(tmp_path: Path, *constraints: str, packages: str = '"alpha"') -> Path:
    path = tmp_path / "recipes" / "demo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ", ".join(f'"{c}"' for c in constraints)
    path.write_text(
        f'[venv]\nname = "demo"\nversion = "1.0"\ninstall-path = "/opt/venvs/demo"\n'
        f"packages = [{packages}]\nconstraints = [{lines}]\n"
    )
    return path


def refused(tmp_path: Path, server: FileServer, body: bytes, *, packages: str = '"alpha"') -> str:
    server.files["/upper.txt"] = body
    recipe = load_recipe(recipe_with(tmp_path, f"-c {server.url}/upper.txt", packages=packages))
    with pytest.raises(RecipeError) as err:
        prepare(recipe, tmp_path / "work")
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_fetched_file_cannot_include_a_local_file(tmp_path: Path, server: FileServer) -> None:
    secret_file = tmp_path / "environ"
    secret_file.write_text(f"CI_DEPLOY_TOKEN={SECRET}\n")
    message = refused(tmp_path, server, f"alpha==1.0\n-c file://{secret_file}\n".encode())
    assert f"{server.url}/upper.txt:2" in message
    assert "may include only http(s) URLs" in message
    assert SECRET not in message


def test_a_fetched_file_cannot_include_proc_environ(tmp_path: Path, server: FileServer) -> None:
    # This process's environment as the kernel keeps it: what a CI job's secrets would be in.
    environ = [v for v in Path("/proc/self/environ").read_bytes().split(b"\0") if b"=" in v]
    message = refused(tmp_path, server, b"alpha==1.0\n-c file:///proc/self/environ\n")
    assert message.endswith("upper.txt:2: a fetched file may include only http(s) URLs, not local files")
    assert not [v for v in environ if v.decode(errors="replace") in message]


def test_a_fetched_file_cannot_read_dev_zero(tmp_path: Path, server: FileServer) -> None:
    message = refused(tmp_path, server, b"-c file:///dev/zero\n")
    assert message.endswith("upper.txt:1: a fetched file may include only http(s) URLs, not local files")


def test_a_fetched_direct_url_does_not_replace_the_recipes_pin(tmp_path: Path, server: FileServer) -> None:
    message = refused(
        tmp_path, server, b"six @ http://127.0.0.1:1/six-1.17.0-py3-none-any.whl\n", packages='"six==1.17.0"'
    )
    assert message.endswith("upper.txt:1: a fetched file carries only NAME==VERSION pins (with markers)")
    assert "six" not in message.replace("six==", "")


@pytest.mark.parametrize(
    "line",
    [
        "--index-url http://127.0.0.1:1/simple",
        "--find-links /tmp",
        "alpha>=1.0",
        "alpha[extra]==1.0",
        "alpha==1.*",
        "git+https://h/x.git#egg=alpha",
        "alpha==1.0 --hash=sha256:00",
        f"CI_DEPLOY_TOKEN={SECRET}",
    ],
)
def test_a_fetched_file_carries_pins_only(tmp_path: Path, server: FileServer, line: str) -> None:
    message = refused(tmp_path, server, f"# upstream\nalpha==1.0 ; python_version >= '3'\n{line}\n".encode())
    assert "upper.txt:3: " in message
    assert line not in message and SECRET not in message


def test_the_fetch_has_a_total_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drip = FileServer({"/upper.txt": b"alpha==1.0\n" * 4}, drip=0.2)  # 44 bytes: about 9 s
    monkeypatch.setenv("VENVSHIP_FETCH_DEADLINE", "1")
    start = time.monotonic()
    try:
        recipe = load_recipe(recipe_with(tmp_path, f"-c {drip.url}/upper.txt"))
        with pytest.raises(RecipeError) as err:
            prepare(recipe, tmp_path / "work")
    finally:
        drip.close()
    assert time.monotonic() - start < 4
    assert str(err.value).endswith(f"cannot fetch {drip.url}/upper.txt: not done within 1 s")


def test_credentials_in_a_url_become_basic_auth_and_are_never_shown(
    tmp_path: Path, server: FileServer
) -> None:
    recipe = load_recipe(
        recipe_with(tmp_path, f"-c http://ci:{SECRET}@{server.url[7:]}/gone.txt?token={SECRET}")
    )
    with pytest.raises(RecipeError) as err:
        prepare(recipe, tmp_path / "work")
    assert str(err.value).endswith(f"cannot fetch {server.url}/gone.txt: HTTP 404 Not Found")
    assert server.auth == ["Basic " + base64.b64encode(f"ci:{SECRET}".encode()).decode()]
    assert server.requests == [f"/gone.txt?token={SECRET}"]  # the query is the server's, sent as given


def test_netrc_logs_in_to_a_private_constraints_host(
    tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login ci password {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server.files["/upper.txt"] = b"alpha===1.0\n"
    prepare(load_recipe(recipe_with(tmp_path, f"-c {server.url}/upper.txt")), tmp_path / "work")
    assert server.auth == ["Basic " + base64.b64encode(f"ci:{SECRET}".encode()).decode()]
    assert (tmp_path / "work" / "source-constraints.txt").read_text() == "alpha===1.0\n"


def test_no_credential_of_a_constraints_url_is_published(
    tmp_path: Path, server: FileServer, write_recipe: RecipeWriter, cache: Path
) -> None:
    host = server.url[len("http://") :]
    server.files[f"/a.txt?token={SECRET}"] = b"unused-by-anyone==1.0\n"
    server.files["/b.txt"] = b"-c c.txt\n"
    server.files["/c.txt"] = b"unused-too==2.0\n"
    recipe = write_recipe(
        constraints=[f"-c {server.url}/a.txt?token={SECRET}", f"-c http://ci:{SECRET}@{host}/b.txt"]
    )
    layout = Layout.create(tmp_path / "oci")
    build_recipe(load_recipe(recipe), output=layout, options=BuildOptions(cache=cache))
    published = published_bytes(tmp_path / "oci")
    assert len(published) > 3
    assert not [b for b in published if SECRET.encode() in b]
    assert any(f"{server.url}/b.txt".encode() in b for b in published)  # the config names it
    assert any(f"{server.url}/c.txt".encode() in b for b in published)  # the provenance names it
    assert any(f"{server.url}/a.txt".encode() in b for b in published)


def published_bytes(root: Path) -> list[bytes]:
    """Every file of the layout, and the decoded payload of each DSSE envelope (provenance) in it."""
    out = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        out.append(data)
        try:
            doc = json.loads(data)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("payload"), str):
            out.append(base64.b64decode(doc["payload"]))
    return out
