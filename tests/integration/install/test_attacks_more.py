"""More of venv-pull attacked as an intruder would (#10): a layer that inflates in its tar headers,
a store or destination folder an unprivileged user can write, planted state that would make a run
report success without a trust check.

Each test that guards a fix fails on the venv-pull before it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zlib

from .conftest import Artifacts, Pull, Wheels
from .test_layers import _swap_layer


def _pax_bomb(inflated: int) -> bytes:
    """A tar+gzip layer whose one pax header claims ``inflated`` bytes of zeros (~1000:1 in gzip)."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.size, info.type = inflated, tarfile.XHDTYPE
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [co.compress(info.tobuf(format=tarfile.USTAR_FORMAT))]
    block = b"\0" * (1 << 20)
    parts += [co.compress(block) for _ in range(inflated >> 20)]
    parts.append(co.flush())
    return b"".join(parts)


def test_a_layer_that_inflates_in_a_tar_header_is_refused_within_its_limit(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    good = artifacts.write([wheels.demo1])
    first = pull.install(good)
    # 512 MiB of header from ~0.5 MiB of layer: tarfile reads a pax header whole, into memory,
    # before venv-pull sees the member; a layer's limit (64 times its size) must bound that too.
    ref = _swap_layer(artifacts, good, "demo", _pax_bomb(512 << 20))
    wrapper = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(proc.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(proc.returncode)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *pull.argv("install", ref)],
        env=pull.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    assert "layer demo-1.0.venv.tar.gz" in line and "unpacks to more than" in line, line
    peak_mib = int(proc.stdout.strip()) >> 10
    assert peak_mib < 256, f"venv-pull peaked at {peak_mib} MiB unpacking a 0.5 MiB layer"
    assert os.readlink(pull.dest).endswith(first["generation"])
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"
