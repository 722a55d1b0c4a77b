"""A full file system while copying from a registry is one line naming the folder, at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest

from tests.integration.install.conftest import big_wheel, make_config, wheel_of
from venvship.builder.package import write_to_layout
from venvship.cli import venvship_main
from venvship.oci.layout import Layout

from ._support import RegistryServer

pytestmark = pytest.mark.registry


def test_publish_into_a_full_layout_says_no_space_without_retrying(
    open_registry: RegistryServer,
    small_fs: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wheel = big_wheel(tmp_path / "wheels", "bulk", 3.0)
    config = make_config(lock=[wheel_of(wheel)], tools=[], name="bulky")
    source = Layout.create(tmp_path / "src")
    write_to_layout(source, config, {wheel_of(wheel).digest: wheel})
    host = open_registry.host
    assert venvship_main.main(["publish", f"oci:{source.root}", f"{host}/full", "--insecure"]) == 0
    capsys.readouterr()

    dest = small_fs("1m") / "layout"
    started = time.monotonic()
    code = venvship_main.main(["publish", f"{host}/full/bulky:1.0", f"oci:{dest}", "--insecure"])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1
    [line] = [ln for ln in err.splitlines() if ln.startswith("venvship: error: ")]
    assert line.startswith(f"venvship: error: {dest}: no space left on device (")
    assert line.endswith(" needed); free some space and run again")
    assert "retrying" not in err and took < 5  # a full disk is not a transfer to try again
    assert not list(dest.rglob("*.tmp"))
