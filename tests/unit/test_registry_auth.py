"""WWW-Authenticate parsing and credential lookup (Docker/podman config files, credential helpers)."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from venvship.errors import RegistryError
from venvship.oci.auth import Challenge, Credentials, load_credentials, parse_challenges

REG = "reg.example:5000"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.example/token",service="registry.example",'
            'scope="repository:ns/app:pull,push"',
            [
                (
                    "bearer",
                    {
                        "realm": "https://auth.example/token",
                        "service": "registry.example",
                        "scope": "repository:ns/app:pull,push",
                    },
                )
            ],
        ),
        ('Basic realm="test-realm"', [("basic", {"realm": "test-realm"})]),
        ('BASIC Realm="x"', [("basic", {"realm": "x"})]),
        (
            'Basic realm="a", Bearer realm="https://t/token",service=s, error="insufficient_scope"',
            [
                ("basic", {"realm": "a"}),
                ("bearer", {"realm": "https://t/token", "service": "s", "error": "insufficient_scope"}),
            ],
        ),
        ('Bearer realm="quo\\"ted, comma"', [("bearer", {"realm": 'quo"ted, comma'})]),
        ("Negotiate", [("negotiate", {})]),
        ("Basic dXNlcjpwdw==, Bearer realm=r", [("basic", {}), ("bearer", {"realm": "r"})]),
        ("", []),
    ],
)
def test_parse_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    got = parse_challenges([header])
    assert [(c.scheme, dict(c.params)) for c in got] == expected


def test_parse_challenges_from_several_headers() -> None:
    got = parse_challenges(['Basic realm="a"', 'Bearer realm="b"'])
    assert got == [
        Challenge(scheme="basic", params={"realm": "a"}),
        Challenge(scheme="bearer", params={"realm": "b"}),
    ]


def test_credentials_hide_the_secret() -> None:
    creds = Credentials(username="u", password="hunter2")
    assert "hunter2" not in repr(creds)
    assert creds.basic_header() == "Basic " + base64.b64encode(b"u:hunter2").decode()


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_no_config_means_no_credentials(home: Path) -> None:
    assert load_credentials(REG, environ={}, home=home) is None


@pytest.mark.parametrize("key", [REG, f"https://{REG}", f"http://{REG}/", f"https://{REG}/v1/"])
def test_docker_config_auths(home: Path, key: str) -> None:
    key = key.rstrip("/") if key.endswith(f"{REG}/") else key
    write_json(home / ".docker/config.json", {"auths": {key: {"auth": b64("bob:pa:ss")}}})
    assert load_credentials(REG, environ={}, home=home) == Credentials(username="bob", password="pa:ss")
    assert load_credentials("other.example", environ={}, home=home) is None


def test_username_password_fields_and_docker_config_env(home: Path, tmp_path: Path) -> None:
    cfg = write_json(tmp_path / "dc/config.json", {"auths": {REG: {"username": "u", "password": "p"}}})
    assert load_credentials(REG, environ={"DOCKER_CONFIG": str(cfg.parent)}, home=home) == Credentials(
        "u", "p"
    )
    assert load_credentials(REG, environ={}, home=home) is None  # ~/.docker is not read then... it is absent


def test_registry_auth_file_comes_first(home: Path, tmp_path: Path) -> None:
    write_json(home / ".docker/config.json", {"auths": {REG: {"auth": b64("docker:1")}}})
    podman = write_json(tmp_path / "auth.json", {"auths": {REG: {"auth": b64("podman:2")}}})
    env = {"REGISTRY_AUTH_FILE": str(podman)}
    assert load_credentials(REG, environ=env, home=home) == Credentials("podman", "2")
    other = write_json(tmp_path / "other.json", {"auths": {}})
    assert load_credentials(REG, environ={"REGISTRY_AUTH_FILE": str(other)}, home=home) == Credentials(
        "docker", "1"
    )


def test_xdg_runtime_auth_file(home: Path, tmp_path: Path) -> None:
    write_json(tmp_path / "run/containers/auth.json", {"auths": {REG: {"auth": b64("x:y")}}})
    assert load_credentials(
        REG, environ={"XDG_RUNTIME_DIR": str(tmp_path / "run")}, home=home
    ) == Credentials("x", "y")


@pytest.mark.parametrize("bad", ["not base64!", b64("no-colon")])
def test_bad_auth_entry_is_a_clear_error(home: Path, bad: str) -> None:
    write_json(home / ".docker/config.json", {"auths": {REG: {"auth": bad}}})
    with pytest.raises(RegistryError, match=r"auths\['reg.example:5000'\]: 'auth' is not base64"):
        load_credentials(REG, environ={}, home=home)


def test_broken_config_json(home: Path) -> None:
    (home / ".docker").mkdir()
    (home / ".docker/config.json").write_text("{nope")
    with pytest.raises(RegistryError, match=r"config\.json: not valid JSON"):
        load_credentials(REG, environ={}, home=home)


@pytest.fixture
def helper_env(tmp_path: Path) -> dict[str, str]:
    """A PATH with ``docker-credential-test``: knows reg.example:5000, logs what it was asked."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker-credential-test"
    script.write_text(
        f"""#!/bin/sh
[ "$1" = get ] || exit 3
read -r server
echo "$server" >> {tmp_path}/asked
case "$server" in
  {REG}) printf '%s' '{{"ServerURL":"{REG}","Username":"helper-user","Secret":"helper-secret"}}' ;;
  broken.example) echo "helper exploded"; exit 2 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_cred_helpers(
    home: Path, helper_env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="venvship")
    write_json(home / ".docker/config.json", {"credHelpers": {REG: "test"}})
    assert load_credentials(REG, environ=helper_env, home=home) == Credentials("helper-user", "helper-secret")
    assert (tmp_path / "asked").read_text() == f"{REG}\n"
    assert "helper-secret" not in caplog.text


def test_creds_store_falls_back_to_auths(home: Path, helper_env: dict[str, str]) -> None:
    write_json(
        home / ".docker/config.json",
        {"credsStore": "test", "auths": {"elsewhere.example": {"auth": b64("file:pw")}}},
    )
    assert load_credentials(REG, environ=helper_env, home=home) == Credentials("helper-user", "helper-secret")
    assert load_credentials("elsewhere.example", environ=helper_env, home=home) == Credentials("file", "pw")
    assert load_credentials("nobody.example", environ=helper_env, home=home) is None


def test_failing_or_missing_helper(home: Path, helper_env: dict[str, str]) -> None:
    write_json(home / ".docker/config.json", {"credHelpers": {"broken.example": "test", REG: "absent"}})
    with pytest.raises(RegistryError, match="docker-credential-test failed \\(helper exploded\\)"):
        load_credentials("broken.example", environ=helper_env, home=home)
    with pytest.raises(RegistryError, match="docker-credential-absent cannot run"):
        load_credentials(REG, environ=helper_env, home=home)


@pytest.mark.parametrize("name", ["x/evil", "../evil", "", "-v"])
def test_a_helper_is_a_name_never_a_path(home: Path, helper_env: dict[str, str], name: str) -> None:
    # A name with a slash would run a program from the working folder, whatever PATH says.
    write_json(home / ".docker/config.json", {"credHelpers": {REG: name}, "credsStore": name})
    with pytest.raises(RegistryError, match="is not the name of a credential helper"):
        load_credentials(REG, environ=helper_env, home=home)
