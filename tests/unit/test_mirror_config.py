"""The mirror configuration: registries.toml and its JSON twin, prefix matching, location rewriting,
``--mirror`` parsing, and one-line errors that name the file and key."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from venvship.cli.install_args import add_mirror_options, mirror_arg, mirror_options
from venvship.errors import BadReference, InstallError
from venvship.host.conffile import find_settings
from venvship.install.registries import load_mirror_config, location_problem
from venvship.oci.mirrors import Mirror
from venvship.oci.reference import RegistryRef, parse_ref

TOML = """
[[registry]]
prefix = "reg.example.com"

[[registry.mirror]]
location = "cache-a.example.net:5000"
connect-timeout = 1.5

[[registry]]
prefix = "reg.example.com/openstack"

[[registry.mirror]]
location = "cache-b.example.net/os-mirror"
ca-file = "ca.pem"

[[registry.mirror]]
location = "10.1.2.3:5000/openstack"
insecure = true

[[registry]]
prefix = "reg.example.com/openstack/private"
mirror = []
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _ref(text: str) -> RegistryRef:
    ref = parse_ref(text)
    assert isinstance(ref, RegistryRef)
    return ref


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    _write(tmp_path, "ca.pem", "not read here\n")
    return _write(tmp_path, "registries.toml", TOML)


def test_longest_prefix_at_a_path_boundary_chooses_the_mirrors(conf: Path) -> None:
    config = load_mirror_config(conf)
    rule = config.rule_for(_ref("reg.example.com/openstack/keystone:31"))
    assert rule is not None and rule.prefix == "reg.example.com/openstack"
    assert [m.location for m in rule.mirrors] == ["cache-b.example.net/os-mirror", "10.1.2.3:5000/openstack"]
    assert rule.mirrors[0].ca_file == str(conf.parent / "ca.pem")  # relative to the file
    assert (rule.mirrors[1].insecure, rule.mirrors[1].connect_timeout) == (True, 3.0)
    # "openstackx" is not under "openstack": a prefix ends at a "/".
    other = config.rule_for(_ref("reg.example.com/openstackx/nova:1"))
    assert other is not None and other.prefix == "reg.example.com"
    assert other.mirrors[0].connect_timeout == 1.5
    # A longer prefix without mirrors turns them off below it.
    private = config.rule_for(_ref("reg.example.com/openstack/private/x:1"))
    assert private is not None and private.mirrors == ()
    assert config.rule_for(_ref("elsewhere.example.com/openstack/keystone:31")) is None


def test_json_twin_reads_the_same(conf: Path, tmp_path: Path) -> None:
    """What a Python without tomllib reads: the same document as JSON."""
    import tomllib

    twin = _write(tmp_path, "registries.json", json.dumps(tomllib.loads(conf.read_text())))
    assert load_mirror_config(twin).rules == load_mirror_config(conf).rules


def test_a_mirror_location_replaces_the_prefix() -> None:
    ref = _ref("reg.example.com/openstack/keystone@sha256:" + "a" * 64)
    moved = Mirror(location="cache:5000/os-mirror").ref_for(ref, "reg.example.com/openstack")
    assert str(moved) == "cache:5000/os-mirror/keystone@sha256:" + "a" * 64
    assert str(Mirror(location="cache:5000").ref_for(ref, "reg.example.com")) == (
        "cache:5000/openstack/keystone@sha256:" + "a" * 64
    )
    with pytest.raises(
        BadReference, match=re.escape("mirror cache:5000 of reg.example.com/openstack/keystone")
    ):
        Mirror(location="cache:5000").ref_for(ref, "reg.example.com/openstack/keystone")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[registry]]\nprefix = "reg.example.com"\nmirrors = []\n', "unknown key 'registry[0].mirrors'"),
        ("[[registry]]\nmirror = []\n", "registry[0].prefix: missing or not a string"),
        ('[[registry]]\nprefix = "reg.example.com/Upper"\n', "registry[0].prefix: 'reg.example.com/Upper'"),
        (
            '[[registry]]\nprefix = "a.example"\n[[registry]]\nprefix = "a.example"\n',
            "registry[1].prefix: 'a.example' is configured twice",
        ),
        (
            '[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\nlocation = "c@x/y"\n',
            "registry[0].mirror[0].location: 'c@x/y': not HOST[:PORT][/PATH] (bad host 'c@x')",
        ),
        (
            '[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\nlocation = "c.example"\n'
            "pull-from-mirror = 'all'\n",
            "unknown key 'registry[0].mirror[0].pull-from-mirror' (known: location, insecure, ca-file,",
        ),
        (
            '[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\nlocation = "c.example"\n'
            "connect-timeout = 0\n",
            "registry[0].mirror[0].connect-timeout: not a number of seconds",
        ),
        (
            '[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\nlocation = "c.example"\n'
            'insecure = "yes"\n',
            "registry[0].mirror[0].insecure: not true or false",
        ),
        (
            '[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\nlocation = "c.example"\n'
            'ca-file = "gone.pem"\n',
            "registry[0].mirror[0].ca-file: ",
        ),
        ('registry = "a.example"\n', "registry: not a list of tables ([[registry]])"),
        ("[[registry]\n", "not valid TOML"),
    ],
)
def test_mistakes_are_one_line_naming_file_and_key(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, "registries.toml", text)
    with pytest.raises(InstallError) as exc:
        load_mirror_config(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_settings_files_are_found_once(tmp_path: Path) -> None:
    toml, json_twin = tmp_path / "registries.toml", tmp_path / "registries.json"
    assert find_settings(None, (toml, json_twin), what="the mirror configuration") is None
    _write(tmp_path, "registries.json", "{}")
    assert find_settings(None, (toml, json_twin), what="the mirror configuration") == json_twin
    _write(tmp_path, "registries.toml", "")
    with pytest.raises(InstallError, match="two files for the mirror configuration; keep one"):
        find_settings(None, (toml, json_twin), what="the mirror configuration")
    with pytest.raises(InstallError, match="the mirror configuration is not there"):
        load_mirror_config(tmp_path / "nothing.toml")
    assert load_mirror_config(json_twin).rules == ()


def test_locations() -> None:
    assert location_problem("cache.example:5000/openstack") is None
    assert location_problem("[::1]:5000") is None
    assert location_problem("localhost:5000/a/b") is None
    assert location_problem("cache.example/Bad") is not None
    assert location_problem("cache.example:5000/a:tag") is not None
    assert location_problem("") is not None
    assert location_problem("cache.example:5000\n") is not None  # $ matches before a final \n


def test_mirror_option_says_plain_http_by_its_scheme() -> None:
    assert mirror_arg("http://cache.example:5000/os") == Mirror(
        location="cache.example:5000/os", insecure=True
    )
    assert mirror_arg("https://cache.example/") == Mirror(location="cache.example")
    assert mirror_arg("cache.example:5000") == Mirror(location="cache.example:5000")
    for bad in ("ftp://cache.example", "cache example", "http://"):
        with pytest.raises(argparse.ArgumentTypeError):
            mirror_arg(bad)
    p = argparse.ArgumentParser()
    add_mirror_options(p)
    opts = mirror_options(
        p.parse_args(["--mirror", "http://a.example", "--mirror", "b.example", "--mirror-tags"])
    )
    assert [m.location for m in opts.extra] == ["a.example", "b.example"]
    assert (opts.tags, opts.file) == (True, None)
