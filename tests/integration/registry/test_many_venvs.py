"""One host, many venvs: ten artifacts that share most distributions, installed at once into ten
destinations that share one blob cache. Installs hold the cache's lock shared, so nothing stops
them running side by side; what they share is fetched and unpacked once, by whichever install
gets to it first, while the others wait for that one blob only (a lock per blob and step)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from ._fleet import Target, Wave, blob_gets, failures, figures, tiny_artifact
from ._support import RegistryServer, log_mark

pytestmark = pytest.mark.registry

VENVS = 10
SHARED = {f"shared{i}": "1.0" for i in range(8)}
PAYLOAD = 1 << 20  # per wheel: enough that installs reach a shared layer together


def test_venvs_sharing_distributions_pull_and_unpack_each_once(
    open_registry: RegistryServer, tmp_path: Path, tool_wheels: Path
) -> None:
    artifacts = [
        tiny_artifact(
            tmp_path / f"a{i}", tool_wheels, {**SHARED, f"own{i}": "1.0"}, name=f"venv{i}", payload=PAYLOAD
        )
        for i in range(VENVS)
    ]
    refs = [a.publish(open_registry) for a in artifacts]
    cache = tmp_path / "host-cache"
    jobs = [
        (Target(tmp_path / f"venv{i}", cache=cache), ref, ["--insecure", "--check-command", "true"])
        for i, ref in enumerate(refs)
    ]
    start = log_mark(open_registry)
    outcomes = Wave(jobs, verbose=True).outcomes()
    print(f"\n{VENVS} venvs into one cache at once: {figures(outcomes)}")
    assert failures(outcomes) == []
    wanted = {d for a in artifacts for d in a.pulled_blobs()}
    # Each blob came once, though every install wanted the eight shared ones.
    fetched = collections.Counter(g.digest for g in blob_gets(open_registry, start))
    assert fetched == collections.Counter(wanted)
    # And each layer was unpacked into the host's store once, then copied into every venv (each
    # venv its own files: a hot patch in one never reaches another).
    unpacked = collections.Counter(
        line.split("unpacked ", 1)[1]
        for o in outcomes
        for line in o.stderr.splitlines()
        if line.endswith(" into the store")
    )
    assert len(unpacked) == len(SHARED) + VENVS and set(unpacked.values()) == {1}, unpacked
    copies = [next(o.target.root.glob("venv/lib/python*/site-packages/shared0/data.txt")) for o in outcomes]
    assert len({path.stat().st_ino for path in copies}) == VENVS
    assert len({path.read_bytes() for path in copies}) == 1
