"""The arm64 root runs: its Python reports aarch64 and the cp311 ABI (qemu-user through binfmt_misc)."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_in_root

PROBE = "import platform, sysconfig; print(platform.machine()); print(sysconfig.get_config_var('SOABI'))"


def test_python_in_the_root_is_aarch64_cp311(arm64_root: Path) -> None:
    proc = run_in_root(arm64_root, ["/usr/bin/python3", "-c", PROBE])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["aarch64", "cpython-311-aarch64-linux-gnu"]
