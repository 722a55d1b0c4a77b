"""A no-op ``venv-pull install`` asks the registry one question, also when the artifact names the
destination (no ``--dest``): the rest comes from the blob cache."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from tests.integration.install.conftest import DISTRO_PYTHON, make_config, make_wheel, wheel_of, with_layers
from venvship.builder.package import write_to_layout
from venvship.cli import venv_pull_main
from venvship.oci.layout import Layout
from venvship.oci.publish import publish_layout
from venvship.oci.reference import RegistryRef

from ._support import RegistryServer, client_for, log_mark, requests_between

pytestmark = pytest.mark.registry


def test_no_op_install_without_dest_makes_one_request(
    open_registry: RegistryServer,
    tool_wheels: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "venvs" / "demo"
    wheel = make_wheel(tmp_path / "wheels", "demo", "1.0")
    uv = next(tool_wheels.glob("uv-*.whl"))
    config = make_config(lock=[wheel_of(wheel)], tools=[wheel_of(uv)], install_path=str(dest))
    layout = Layout.create(tmp_path / "oci")
    files = {wheel_of(wheel).digest: wheel, wheel_of(uv).digest: uv}
    config, files = with_layers(config, files, python=DISTRO_PYTHON, work=tmp_path)
    write_to_layout(layout, config, files)
    publish_layout(
        layout,
        ["demo:1.0"],
        RegistryRef(registry=open_registry.host, repository="nodest"),
        client_for(open_registry),
    )
    argv = [
        "install",
        f"{open_registry.host}/nodest/demo:1.0",
        "--insecure",
        "--cache",
        str(tmp_path / "blobcache"),
        "--facts-dir",
        str(tmp_path / "facts"),
        "--no-distro-packages",
        "--json",
    ]

    def install() -> dict[str, object]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code = venv_pull_main.main(argv)
        out, err = capsys.readouterr()
        assert code == 0, err
        result: dict[str, object] = json.loads(out)
        return result

    first = install()
    assert (first["changed"], first["dest"]) == (True, str(dest))
    start = log_mark(open_registry)
    assert install()["changed"] is False
    assert requests_between(open_registry, start) == [("GET", "/v2/nodest/demo/manifests/1.0")]
