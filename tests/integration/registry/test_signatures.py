"""Signatures through real registries (open, htpasswd, token, TLS). Debian's docker-registry 2.8
has no referrers API: every signature goes through the ``sha256-<hex>`` fallback tag."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from tests.integration.install.conftest import DISTRO_PYTHON, make_config, make_wheel, wheel_of, with_layers
from tests.signing import KeyPair, make_key, write_policy
from venvship.artifact.sigformat import SIG_ARTIFACT_TYPE, parse_referrer
from venvship.builder.package import write_to_layout
from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.layout import Layout
from venvship.oci.referrers import referrers_tag

from ._pki import PASSWORD
from ._support import RegistryServer, cli_registry_args, client_for, log_mark, requests_between

pytestmark = pytest.mark.registry

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``venvship`` or ``venv-pull`` in-process against a server (its login on stdin)."""

    def call(
        main: Callable[[list[str]], int], argv: list[str], server: RegistryServer
    ) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        code = main([*argv, *cli_registry_args(server)])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def _artifact(root: Path, tool_wheels: Path, *, body: str = "") -> Layout:
    """Write an installable ``demo:1.0`` (one tiny wheel, ready-to-run layers) into a layout."""
    wheel = make_wheel(root / "wheels", "demo", "1.0", body=body)
    uv = next(tool_wheels.glob("uv-*.whl"))
    config = make_config(lock=[wheel_of(wheel)], tools=[wheel_of(uv)])
    files = {wheel_of(wheel).digest: wheel, wheel_of(uv).digest: uv}
    config, files = with_layers(config, files, python=DISTRO_PYTHON, work=root)
    layout = Layout.create(root / "oci")
    write_to_layout(layout, config, files)
    return layout


def _install_argv(tmp_path: Path, ref: str, policy: Path) -> list[str]:
    return [
        "install",
        ref,
        "--dest",
        str(tmp_path / "venvs" / "demo"),
        "--cache",
        str(tmp_path / "blobcache"),
        "--facts-dir",
        str(tmp_path / "facts"),
        "--no-distro-packages",
        "--policy",
        str(policy),
        "--json",
    ]


def test_signed_through_each_registry_unsigned_refused(
    any_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    host = any_registry.host
    key = make_key(tmp_path / "keys", "release")
    layout = _artifact(tmp_path / "a", tool_wheels)
    code, out, err = cli(
        venvship_main.main,
        ["publish", f"oci:{layout.root}", f"{host}/signed", "--sign-key", str(key.private)],
        any_registry,
    )
    assert code == 0, err
    assert "referrers copied" in out
    client = client_for(any_registry)
    index = client.check_tag("signed/demo", "1.0")
    assert index is not None and referrers_tag(index) in client.list_tags("signed/demo")  # the fallback tag
    assert len(client.referrers("signed/demo", index)) == 1
    assert client.referrers_api is False  # it answered 404 to the referrers API

    policy = write_policy(tmp_path / "policy.toml", {f"{host}/signed": [key.public]})
    argv = _install_argv(tmp_path, f"{host}/signed/demo:1.0", policy)
    code, out, err = cli(venv_pull_main.main, argv, any_registry)
    assert code == 0, err
    assert json.loads(out)["changed"] is True
    start = log_mark(any_registry)
    code, out, err = cli(venv_pull_main.main, argv, any_registry)
    assert (code, json.loads(out)["changed"]) == (0, False)
    if not any_registry.extra.get("needs_auth"):  # a login adds its own round trips
        assert requests_between(any_registry, start) == [("GET", "/v2/signed/demo/manifests/1.0")]

    # The tag moves to an unsigned artifact: refused in one line, the signed venv stays.
    unsigned = _artifact(tmp_path / "b", tool_wheels, body="EVIL = True")
    assert (
        cli(venvship_main.main, ["publish", f"oci:{unsigned.root}", f"{host}/signed"], any_registry)[0] == 0
    )
    live = (tmp_path / "venvs" / "demo").resolve()
    code, out, err = cli(venv_pull_main.main, argv, any_registry)
    assert code == 1
    [line] = err.strip().splitlines()
    assert f"expected a signature by {key.public}; found no signature" in line
    assert (tmp_path / "venvs" / "demo").resolve() == live


def test_formats_other_tools_read(
    open_registry: RegistryServer, tool_wheels: Path, tmp_path: Path, cli: Cli
) -> None:
    """openssl verifies a signature as stored; skopeo copies the fallback tag; the registry's copy
    comes back into a layout with its signatures, and installs there under a policy."""
    host = open_registry.host
    key = make_key(tmp_path / "keys", "release")
    layout = _artifact(tmp_path / "a", tool_wheels)
    assert cli(venvship_main.main, ["publish", f"oci:{layout.root}", f"{host}/tools"], open_registry)[0] == 0
    code, out, err = cli(
        venvship_main.main,
        ["sign", f"{host}/tools/demo:1.0", "--key", str(key.private), "--vouch-unverified"],
        open_registry,
    )
    assert code == 0 and "signed 2 digest(s)" in out, err

    client = client_for(open_registry)
    index = client.check_tag("tools/demo", "1.0")
    assert index is not None
    [entry] = client.referrers("tools/demo", index)
    assert entry.artifact_type == SIG_ARTIFACT_TYPE
    referrer = parse_referrer(client.get_manifest("tools/demo", entry.digest)[1], where="sig")
    [layer] = referrer.signatures()
    (tmp_path / "payload").write_bytes(client.get_blob_bytes("tools/demo", layer.payload.digest))
    (tmp_path / "sig").write_bytes(layer.signature)
    proc = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            key.public,
            "-signature",
            tmp_path / "sig",
            tmp_path / "payload",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == "Verified OK", proc.stderr

    fallback = f"docker://{host}/tools/demo:{referrers_tag(index)}"
    subprocess.run(
        ["skopeo", "copy", "--all", "--src-tls-verify=false", fallback, f"oci:{tmp_path / 'skopeo'}:sigs"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", fallback], check=True, capture_output=True
    ).stdout
    assert [m["artifactType"] for m in json.loads(raw)["manifests"]] == [SIG_ARTIFACT_TYPE]

    # Registry → layout: the artifact and its signatures, for an air-gapped host.
    carried = tmp_path / "carried"
    code, out, err = cli(
        venvship_main.main, ["publish", f"{host}/tools/demo:1.0", f"oci:{carried}"], open_registry
    )
    assert code == 0, err
    assert "2 referrers copied" in out
    code, out, err = cli(venvship_main.main, ["inspect", f"oci:{carried}:demo:1.0"], open_registry)
    assert code == 0 and out.count(f"signed by key {key_short(key)}") == 2, out
    policy = write_policy(tmp_path / "policy.json", {f"oci:{carried}": [key.public]})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "venvship.cli.venv_pull_main",
            *_install_argv(tmp_path, f"oci:{carried}:demo:1.0", policy),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed"] is True


def key_short(key: KeyPair) -> str:
    """The key id as ``venvship inspect`` shows it."""
    from venvship.artifact.sigformat import key_id, public_key_der, short_id

    return short_id(key_id(public_key_der(key.public.read_text(), where="key")))
