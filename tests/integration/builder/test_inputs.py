"""A recipe's build inputs: remote constraint files (through a proxy, over TLS with the host's CAs),
nested includes, and the inputs digest that decides whether anything changed. No pip runs here:
``prepare`` is the seam that writes pip's files."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.registry._pki import make_tls_certs
from tests.servers import FileServer, Proxy
from venvship.builder.inputs import prepare
from venvship.errors import RecipeError
from venvship.recipe.recipefile import load_recipe

UPPER = b"# upstream\nalpha===1.0\nbeta===2.0 ; python_version >= '3.8'\n-c more.txt\n"
MORE = b"gamma===3.0\n"


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


def recipe_with(tmp_path: Path, *constraints: str) -> Path:
    path = tmp_path / "recipes" / "demo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ", ".join(f'"{c}"' for c in constraints)
    path.write_text(
        f'[venv]\nname = "demo"\nversion = "1.0"\ninstall-path = "/opt/venvs/demo"\n'
        f'packages = ["alpha"]\nconstraints = [{lines}]\n'
    )
    return path


def flat_constraints(work: Path) -> list[str]:
    return (work / "source-constraints.txt").read_text().splitlines()


def test_remote_constraints_come_through_the_http_proxy_with_their_includes(
    tmp_path: Path, no_proxy_env: None, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FileServer({"/c/upper.txt": UPPER, "/c/more.txt": MORE})
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        recipe = load_recipe(recipe_with(tmp_path, f"--constraint {server.url}/c/upper.txt"))
        inputs = prepare(recipe, tmp_path / "work")
    finally:
        server.close()
    # Comments dropped, the nested include (relative to the URL) expanded in place.
    assert flat_constraints(tmp_path / "work") == [
        "alpha===1.0",
        "beta===2.0 ; python_version >= '3.8'",
        "gamma===3.0",
    ]
    assert proxy.seen == [f"{server.url}/c/upper.txt", f"{server.url}/c/more.txt"]
    assert inputs.digest.startswith("sha256:")


def test_https_constraints_through_a_connect_proxy_trust_the_named_cas(
    tmp_path: Path, no_proxy_env: None, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = make_tls_certs(tmp_path / "pki")
    server = FileServer({"/upper.txt": b"alpha===1.0\n"}, tls=(cert, key))
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        recipe = load_recipe(recipe_with(tmp_path, f"-c {server.url}/upper.txt"))
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(RecipeError) as err:  # the distro's CAs do not know the test CA
            prepare(recipe, tmp_path / "work")
        assert f"cannot fetch {server.url}/upper.txt" in str(err.value) and "\n" not in str(err.value)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        prepare(recipe, tmp_path / "work")
    finally:
        server.close()
    assert flat_constraints(tmp_path / "work") == ["alpha===1.0"]
    assert proxy.seen == [server.url.removeprefix("https://")] * 2  # one CONNECT tunnel per fetch


def test_a_missing_remote_file_is_one_line_naming_the_url_and_status(
    tmp_path: Path, no_proxy_env: None
) -> None:
    server = FileServer({})
    try:
        recipe = load_recipe(recipe_with(tmp_path, f"-c {server.url}/gone.txt"))
        with pytest.raises(RecipeError) as err:
            prepare(recipe, tmp_path / "work")
    finally:
        server.close()
    message = str(err.value)
    assert "\n" not in message
    assert f"cannot fetch {server.url}/gone.txt: HTTP 404" in message
    assert message.startswith(f"{recipe.path}: venv.constraints[0]")


def test_a_changed_upstream_file_changes_the_inputs_digest(tmp_path: Path, no_proxy_env: None) -> None:
    server = FileServer({"/upper.txt": UPPER, "/more.txt": MORE})
    try:
        recipe = load_recipe(recipe_with(tmp_path, f"-c {server.url}/upper.txt"))
        first = prepare(recipe, tmp_path / "w1").digest
        assert prepare(recipe, tmp_path / "w2").digest == first
        server.files["/more.txt"] = b"gamma===3.1\n"  # only the nested file changes upstream
        assert prepare(recipe, tmp_path / "w3").digest != first
    finally:
        server.close()


def test_a_nested_local_constraints_file_is_part_of_the_inputs_digest(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "upper.txt").write_text("-c nested/more.txt\nalpha===1.0\n")
    (folder / "nested").mkdir()
    (folder / "nested" / "more.txt").write_text("beta===2.0\n")
    recipe = load_recipe(recipe_with(tmp_path, "-c upper.txt"))
    first = prepare(recipe, tmp_path / "w1")
    assert flat_constraints(tmp_path / "w1") == ["beta===2.0", "alpha===1.0"]
    (folder / "nested" / "more.txt").write_text("beta===2.1\n")
    assert prepare(recipe, tmp_path / "w2").digest != first.digest


def test_a_file_that_includes_itself_is_one_error_naming_the_chain(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "a.txt").write_text("-c b.txt\n")
    (folder / "b.txt").write_text("alpha===1.0\n-c a.txt\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe_with(tmp_path, "-c a.txt"))
    message = str(err.value)
    assert "\n" not in message
    assert "includes itself" in message and f"{folder}/a.txt → {folder}/b.txt → {folder}/a.txt" in message


def test_a_bad_line_in_a_nested_file_names_the_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "upper.txt").write_text("# fine\nalpha===1.0\nnot a requirement!\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe_with(tmp_path, "-c upper.txt"))
    assert f"{folder}/upper.txt:3" in str(err.value) and "invalid requirement" in str(err.value)


def test_the_locks_extras_and_groups_are_inputs(tmp_path: Path) -> None:
    sha = "a" * 64
    (tmp_path / "pylock.toml").write_text(
        'lock-version = "1.0"\ncreated-by = "test"\nextras = ["fast"]\ndependency-groups = ["docs"]\n\n'
        f'[[packages]]\nname = "alpha"\nversion = "1.0"\n'
        f'wheels = [{{ url = "https://files.example/alpha-1.0-py3-none-any.whl", hashes = {{ sha256 = "{sha}" }} }}]\n'
    )
    head = '[venv]\nname = "demo"\nversion = "1.0"\ninstall-path = "/opt/venvs/demo"\nlock = "pylock.toml"\n'
    digests = []
    for extra in ("", 'lock-extras = ["fast"]\n', 'lock-groups = ["docs"]\n', "lock-groups = []\n"):
        (tmp_path / "demo.toml").write_text(head + extra)
        digests.append(prepare(load_recipe(tmp_path / "demo.toml"), tmp_path / "work").digest)
    assert len(set(digests)) == 4, digests
