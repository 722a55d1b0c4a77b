"""A simulated fleet on loopback, real processes throughout: an origin docker-registry, two regional
pull-through caches of it (docker-registry with ``proxy.remoteurl``), and 40 hosts, each its own
``venv-pull install`` process with its own blob cache, destination and facts, half pointed at each
cache with the origin as the fallback.

What the origin served is read from its own log (every blob GET, the bytes written, who asked).
The ideal is one copy of each blob per cache. Debian's docker-registry 2.8 fetches a blob twice
from the origin on a cache's first miss (once to store it, once to stream it: distribution's
``proxyblobstore.ServeBlob``; one fetch from 3.0.0 on) and once more for every request that misses
while it is being stored, so a cold wave started all at once costs the origin more than the
ideal: that wave is measured and reported. One host per cache first (a canary, as Ansible's
``serial: [1, "100%"]`` does per region) makes the cache's fill the only origin traffic: the
upgrade wave checks that exactly one fill per cache leaves the origin and the rest nothing.

The health check is ``true``: this is about distribution, and 40 checks at once on two cores
would measure the CPU.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Iterable, Iterator

import pytest

from ._fleet import (
    REPO,
    BlobGet,
    Outcome,
    Target,
    TinyArtifact,
    Wave,
    blob_gets,
    failures,
    figures,
    start_cache,
    tiny_artifact,
    wait_for,
)
from ._support import RegistryServer, log_mark, start_registry

pytestmark = pytest.mark.registry

HOSTS = 40
V1 = {"alpha": "1.0", "beta": "1.0", "gamma": "1.0", "delta": "1.0"}
V2 = {**V1, "beta": "2.0"}  # the upgrade: one wheel changed
V3A = {**V2, "gamma": "3.0"}  # tag 3.0, then moved to
V3B = {**V2, "gamma": "3.1"}


class Fleet:
    """The origin, the two caches and the hosts (the first half behind cache A)."""

    def __init__(self, root: Path) -> None:
        self.origin = start_registry(root / "origin")
        self.caches: list[RegistryServer] = []
        try:
            for name in ("cache-a", "cache-b"):
                self.caches.append(start_cache(root / name, self.origin))
        except BaseException:
            self.stop()
            raise
        self.hosts = [Target(root / f"host-{i:02d}") for i in range(HOSTS)]

    def cache_of(self, host: Target) -> RegistryServer:
        return self.caches[self.hosts.index(host) * len(self.caches) // HOSTS]

    def jobs(self, ref: str, hosts: list[Target]) -> list[tuple[Target, str, list[str]]]:
        return [
            (h, ref, ["--insecure", "--mirror", f"http://{self.cache_of(h).host}", "--check-command", "true"])
            for h in hosts
        ]

    def stop(self) -> None:
        for server in [*self.caches, self.origin]:
            server.stop()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(tmp_path / "fleet")
    yield made
    made.stop()


def _bytes(gets: list[BlobGet]) -> int:
    return sum(g.written for g in gets)


def _report(title: str, outcomes: list[Outcome], origin: list[BlobGet], ideal: int) -> None:
    """Print one wave's figures (``pytest -s`` shows them; the bench has the same rows)."""
    by_caches = _bytes([g for g in origin if not g.by_venvship])
    direct = _bytes([g for g in origin if g.by_venvship])
    print(
        f"\n{title}: {figures(outcomes)}; origin served {by_caches} blob bytes to the caches "
        f"({by_caches / ideal:.2f}x the ideal {ideal}) and {direct} to hosts directly"
    )


def _new_blobs(after: TinyArtifact, before: TinyArtifact) -> dict[str, int]:
    """Return digest → size of what a host of ``before`` pulls to install ``after``."""
    old = before.pulled_blobs()
    return {d: size for d, size in after.pulled_blobs().items() if d not in old}


def _stored(cache: RegistryServer, digests: Iterable[str]) -> bool:
    """True once ``cache`` holds every one of ``digests`` in its storage (stored, not only streamed)."""
    return all(cache.blob_data_path(d).exists() for d in digests)


def _installed(host: Target) -> set[str]:
    """Return the ``name-version`` of every distribution in the host's live venv."""
    return {
        p.name[: -len(".dist-info")] for p in host.root.glob("venv/lib/python*/site-packages/*.dist-info")
    }


def _wants(versions: dict[str, str]) -> set[str]:
    return {f"{name}-{version}" for name, version in versions.items()}


def test_fleet_through_pull_through_caches(fleet: Fleet, tmp_path: Path, tool_wheels: Path) -> None:
    work = tmp_path / "artifacts"
    v1 = tiny_artifact(work / "v1", tool_wheels, V1, tag="1.0")
    v2 = tiny_artifact(work / "v2", tool_wheels, V2, tag="2.0")
    v3a = tiny_artifact(work / "v3a", tool_wheels, V3A, tag="3.0")
    v3b = tiny_artifact(work / "v3b", tool_wheels, V3B, tag="3.0")
    origin, (cache_a, cache_b) = fleet.origin, fleet.caches
    cached = [(h, fleet.cache_of(h)) for h in fleet.hosts]

    # -- wave 1: a cold fleet, every host at once -------------------------------------------------
    ref = v1.publish(origin)
    ideal = sum(v1.pulled_blobs().values())
    start = log_mark(origin)
    outcomes = Wave(fleet.jobs(ref, fleet.hosts)).outcomes()
    served = blob_gets(origin, start)
    _report("cold, all at once", outcomes, served, ideal * len(fleet.caches))
    assert failures(outcomes) == []
    assert {o.result["digest"] for o in outcomes} == {v1.digest}
    # Each host read every blob through its cache; none went to the origin.
    astray = [o for o, (_, c) in zip(outcomes, cached) if o.pulled_from != {f"{c.host}/{REPO}/demo"}]
    assert astray == [], "\n".join(f"{o.target.root.name}: {o.pulled_from}\n{o.stderr}" for o in astray)
    assert [g for g in served if g.by_venvship] == []
    assert {g.digest for g in served} == set(v1.pulled_blobs())

    # -- wave 2: an upgrade that changes one wheel; one canary per cache first ----------------------
    ref = v2.publish(origin)
    new = _new_blobs(v2, v1)
    assert set(new) == {v2.layer("beta"), v2.manifest.config.digest}
    fills = []
    for canary in (fleet.hosts[0], fleet.hosts[-1]):  # one behind each cache, one after the other
        start = log_mark(origin)
        (outcome,) = Wave(fleet.jobs(ref, [canary])).outcomes()
        assert failures([outcome]) == []
        cache = fleet.cache_of(canary)  # the next hosts find the blobs there, not in flight
        wait_for("the cache to store the canary's blobs", functools.partial(_stored, cache, new))
        gets = blob_gets(origin, start)
        assert {g.digest for g in gets} == set(new) and not [g for g in gets if g.by_venvship]
        fills.append(_bytes(gets) / sum(new.values()))
    start = log_mark(origin)
    rest = Wave(fleet.jobs(ref, fleet.hosts[1:-1])).outcomes()
    served = blob_gets(origin, start)
    _report("upgrade after a canary per cache", rest, served, sum(new.values()) * len(fleet.caches))
    assert failures(rest) == []
    # Every host pulled the changed layer and the new config, nothing else (as many blobs).
    assert [sum(o.result["pulled_from"].values()) for o in rest] == [len(new)] * len(rest)
    # Each cache filled itself once (distribution 2.8: two origin fetches per fill, 3.x: one),
    # and the 38 hosts after the canaries cost the origin nothing.
    assert fills[0] == fills[1] and fills[0] in (1, 2), fills
    assert served == []

    # -- wave 3: a cache dies and the tag moves while the fleet installs ----------------------------
    # Half the hosts start; once each has resolved the tag (and while some are still installing),
    # the tag moves, then the other half starts. Cache A is killed once it served a blob.
    ref = v3a.publish(origin)
    start, tag_get = log_mark(origin), f"/v2/{REPO}/demo/manifests/3.0"
    start_of = {cache_a.host: cache_a.log.stat().st_size, origin.host: start}

    def logged(server: RegistryServer, pattern: str, times: int = 1) -> bool:
        text = server.log.read_bytes()[start_of[server.host] :].decode(errors="replace")
        return len(re.findall(pattern, text)) >= times

    first, second = fleet.hosts[::2], fleet.hosts[1::2]  # each half has hosts behind both caches
    early = Wave(fleet.jobs(ref, first))
    wait_for("cache A's first blob of the wave", lambda: logged(cache_a, "/blobs/sha256:"))
    cache_a.proc.kill()  # mid-run: its hosts fall back to the origin
    wait_for(
        "the first half to resolve the tag",
        lambda: logged(origin, f'uri="?{re.escape(tag_get)}"? ', len(first)),
    )
    v3b.publish(origin)  # the tag moves
    still_running = len(first) - early.done()
    late = Wave(fleet.jobs(ref, second))
    outcomes = early.outcomes() + late.outcomes()
    served = blob_gets(origin, start)
    ideal = sum({**_new_blobs(v3a, v2), **_new_blobs(v3b, v2)}.values()) * len(fleet.caches)
    _report("cache A killed and tag moved mid-run", outcomes, served, ideal)
    assert failures(outcomes) == []
    assert still_running > 0, "every host of the first half had finished when the tag moved"
    # Each host ends on the digest the tag named when it asked, with that digest's content only.
    assert [o.result["digest"] for o in outcomes] == [v3a.digest] * len(first) + [v3b.digest] * len(second)
    wanted = {v3a.digest: _wants(V3A), v3b.digest: _wants(V3B)}
    mixed = [o.target.root.name for o in outcomes if _installed(o.target) != wanted[o.result["digest"]]]
    assert mixed == []
    behind_a = [o for o in outcomes if fleet.cache_of(o.target) is cache_a]
    assert all(f"{origin.host}/{REPO}/demo" in o.pulled_from for o in behind_a[len(behind_a) // 2 :])
    assert all(f"{cache_b.host}/{REPO}/demo" not in o.pulled_from for o in behind_a)
