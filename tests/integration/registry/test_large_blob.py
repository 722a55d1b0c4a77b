"""A 200 MB blob pushes and pulls in constant memory (peak RSS measured in a child process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ._support import RegistryServer, random_blob

pytestmark = pytest.mark.registry

SIZE = 200 << 20
RSS_LIMIT_MB = 80

CHILD = """
import json, sys, time
from pathlib import Path
from venvship.oci.layout import Layout
from venvship.oci.registry import RegistryClient

host, repo, path, digest, size, cache = sys.argv[1:]
client = RegistryClient(host, insecure=True)
t0 = time.monotonic()
assert client.push_blob(repo, Path(path), digest, int(size))
t1 = time.monotonic()
assert client.fetch_blob(repo, digest, int(size), Layout.create(Path(cache)))
t2 = time.monotonic()
# VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into a vfork()ed child's
# ru_maxrss at exec, so that figure grows with the pytest process, not with this program.
status = Path("/proc/self/status").read_text()
rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"push_s": t1 - t0, "pull_s": t2 - t1, "peak_rss_mb": rss_kb / 1024}))
"""


def test_200mb_blob_in_constant_memory(open_registry: RegistryServer, tmp_path: Path) -> None:
    path, digest = random_blob(tmp_path / "src", SIZE)
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            open_registry.host,
            "big/blob",
            str(path),
            digest,
            str(SIZE),
            str(cache),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    print(f"200 MB blob: {figures}")
    assert figures["peak_rss_mb"] < RSS_LIMIT_MB
    assert (cache / "blobs" / "sha256" / digest.split(":")[1]).stat().st_size == SIZE
    path.unlink()  # keep the tmp footprint small for the rest of the session
