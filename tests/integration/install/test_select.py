"""Platform selection from an index: architecture, Python ABI, distro key, glibc floor (DESIGN §4)."""

from __future__ import annotations

import os
import sys
from typing import Any

from venvship.host.info import distro_key, go_arch
from venvship.oci.layout import Layout
from venvship.verify.select import Host

from .conftest import Artifacts, Pull, Wheels, python_abi


def _misfits(artifacts: Artifacts, wheels: Wheels) -> list[str]:
    """Write four platforms that each miss this host on one count; return their platform keys.

    Their distro keys sort before the host's, so an index lists them first: a selector that
    skipped a check would pick one of them.
    """
    arch, abi = go_arch(), python_abi(sys.executable)
    variants: list[dict[str, Any]] = [
        {"distro": "aaa-1", "glibc": "99.0"},  # manylinux wheels built for a newer glibc
        {"distro": "aab-1", "distro_bound": True},  # linux_* wheels built on another distro
        {"distro": "aac-1", "abi": "cp27"},  # another Python
        {"distro": "aad-1", "architecture": "s390x" if arch != "s390x" else "arm64"},
    ]
    keys = []
    for kw in variants:
        artifacts.write([wheels.demo1], **kw)
        keys.append(f"{kw['distro']}-{kw.get('architecture', arch)}-{kw.get('abi', abi)}")
    return keys


def test_the_one_fitting_platform_is_selected(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    _misfits(artifacts, wheels)
    ref = artifacts.write([wheels.demo1], distro=distro_key(), glibc=Host.detect().glibc)
    fitting = Layout(artifacts.root).resolve(
        f"demo:1.0-{distro_key()}-{go_arch()}-{python_abi(sys.executable)}"
    )
    assert pull.install(ref, "--check")["digest"] == fitting.digest
    result = pull.install(ref)
    assert result["digest"] == fitting.digest
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"


def test_no_fit_lists_what_the_index_offers(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    keys = _misfits(artifacts, wheels)
    proc = pull("install", f"oci:{artifacts.root}:demo:1.0", "--check", ok=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"venv-pull: error: oci:{artifacts.root}:demo:1.0: no platform fits this host")
    assert f"glibc {Host.detect().glibc}" in line
    offers = line.split("the index offers: ")[1]
    assert offers.split("; ") == [f"{keys[0]} (glibc 99.0)", *(f"{k} (glibc 2.17)" for k in keys[1:])]
    assert not pull.cache.exists() and not os.path.lexists(pull.dest)


def test_single_manifest_reference_is_checked_too(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    artifacts.write([wheels.demo1], distro="aaa-1", glibc="99.0")
    key = f"aaa-1-{go_arch()}-{python_abi(sys.executable)}"
    proc = pull("install", f"oci:{artifacts.root}:demo:1.0-{key}", ok=False)
    assert proc.returncode == 1
    assert f"{key} (glibc 99.0) does not fit this host (glibc 99.0 > {Host.detect().glibc})" in proc.stderr
    assert not os.path.lexists(pull.dest)
