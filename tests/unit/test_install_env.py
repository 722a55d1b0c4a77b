"""The environments venv-pull builds for its children (#19): allow-lists, never the caller's whole
environment."""

from __future__ import annotations

import os

import pytest

from venvship.host.distro import CA_BUNDLE
from venvship.host.info import distro_family
from venvship.venvformat.create import install_env

CALLER = {
    "PATH": "/home/someone/bin:/usr/bin",
    "LANG": "C.UTF-8",
    "LC_TIME": "C",
    "HOME": "/root",
    "HTTPS_PROXY": "http://proxy:3128",
    "PIP_FIND_LINKS": "/opt/wheels",
    "UV_INDEX_URL": "http://elsewhere",
    "PYTHONPATH": "/home/someone/lib",
    "LD_PRELOAD": "/home/someone/evil.so",
    "VENVSHIP_TEST_SECRET": "s3cret",
}


@pytest.fixture
def caller(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in CALLER.items():
        monkeypatch.setenv(key, value)


@pytest.mark.usefixtures("caller")
def test_privileged_children_get_an_allow_list() -> None:
    env = install_env({"LD_PRELOAD": "/artifact.so", "https_proxy": "http://p", "FOO": "1"}, privileged=True)
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["LANG"] == "C.UTF-8" and env["LC_TIME"] == "C" and env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["https_proxy"] == "http://p"  # a recipe's proxy reaches pip; its LD_PRELOAD does not
    assert env["PIP_CONFIG_FILE"] == os.devnull and env["UV_NO_CONFIG"] == "1"
    for key in ("PIP_FIND_LINKS", "UV_INDEX_URL", "PYTHONPATH", "LD_PRELOAD", "VENVSHIP_TEST_SECRET", "FOO"):
        assert key not in env, key
    ca = CA_BUNDLE.get(distro_family(), "")
    if os.path.exists(ca):
        assert env["REQUESTS_CA_BUNDLE"] == ca == env["SSL_CERT_FILE"]  # defaulted to the distro bundle


@pytest.mark.usefixtures("caller")
def test_privileged_children_keep_the_callers_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/caller/ca.pem")
    assert install_env({}, privileged=True)["REQUESTS_CA_BUNDLE"] == "/caller/ca.pem"


@pytest.mark.usefixtures("caller")
def test_health_check_gets_path_locale_and_the_recipes_env_only() -> None:
    env = install_env({"FOO": "1", "TZ": "UTC"}, privileged=False)
    assert env == {"PATH": CALLER["PATH"], "LANG": "C.UTF-8", "LC_TIME": "C", "FOO": "1", "TZ": "UTC"}
