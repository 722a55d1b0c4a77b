"""Fleet (#16): many hosts installing the bench's artifact at once from one origin docker-registry,
through regional pull-through caches, against every host at the origin alone.

Each host is its own ``venv-pull install`` process with its own blob cache, destination and facts;
``--fleet-hosts`` of them (default 40) start at once. The origin serves the artifact, published
there with ``venvship publish``; each cache is Debian's docker-registry with ``proxy.remoteurl``
pointing at the origin, started empty for each case, with half the hosts behind each
(``--mirror http://CACHE``, the origin as their fallback).

- caches, cold, all at once: every host starts at the same moment against empty caches.
- caches, one canary per cache first: one host behind each cache installs, then the rest start
  (a rollout in two steps, as Ansible's ``serial: [1, "100%"]`` per region does).
- origin alone: every host at the origin, no mirrors (the baseline).
- HTTP (#21): the layout served by Debian's nginx over plain HTTP, behind two caching nginx
  proxies (``proxy_cache`` with ``proxy_cache_lock on``, so concurrent misses of one URL make one
  origin request), half the hosts installing ``oci+http://CACHE/…`` from each, cold, all at once,
  no canaries. The copies per cache the origin served come from the origin's own access log.

``--fleet-path registry`` or ``http`` runs one of the two paths (default: both).

Rows: each fleet's wall time (first start to last end; p50 and p99 of the hosts' own times in the
note) against the origin-alone fleet's, and the blob bytes the origin served, read from its own
log, against the ideal: one copy per cache of every blob an install pulls. Distribution 2.8
fetches a blob twice from the origin on a cache's first miss (once to store, once to stream; one
fetch from distribution 3.0 on), and once more for each request that misses meanwhile.
"""

from __future__ import annotations

import re
import secrets
import statistics
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

from _common import Context, section_header, step
from _nginx import OriginLog, start_cache, start_origin
from _procs import BenchError, Stats, check, fresh, tool
from _rows import Row, Target
from _servers import Server, start_registry

SECTION = "fleet"
CACHES = 2
CANARY_BYTES = Target(max_factor=2.0)  # one cache fill each: two origin fetches on distribution 2.8
HTTP_BYTES = Target(max_factor=1.1)  # #21: one copy per cache, with no canaries
PATHS = ("registry", "http")
LOG_DEADLINE = 20.0

_BLOB_GET = re.compile(
    r'http\.request\.method=GET .*http\.request\.uri="?/v2/\S+?/blobs/(sha256:[0-9a-f]{64})"? '
    r".*http\.response\.status=200 http\.response\.written=(\d+)"
)


class _Origin:
    """The origin registry, and how many blob bytes its log says it served since a mark."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._start = 0

    def mark(self) -> None:
        self._start = self._logged_offset()

    def blob_bytes(self, digests: set[str]) -> int:
        """Return the bytes of ``digests`` served since :meth:`mark` (every answer so far is logged)."""
        end = self._logged_offset()
        text = self.server.log.read_bytes()[self._start : end].decode(errors="replace")
        found = [m for m in map(_BLOB_GET.search, text.splitlines()) if m and m.group(1) in digests]
        return sum(int(m.group(2)) for m in found)

    def _logged_offset(self) -> int:
        """Ask a marker request and return the log's size once it is logged: the registry logs a
        request after answering it, so everything answered before is in the log by then."""
        token = secrets.token_hex(8)
        try:
            with urllib.request.urlopen(f"http://{self.server.host}/v2/?bench-mark={token}", timeout=5):
                pass
        except OSError as exc:
            raise BenchError(f"origin {self.server.host}: marker request failed: {exc}") from exc
        deadline = time.monotonic() + LOG_DEADLINE
        while True:
            data = self.server.log.read_bytes()
            at = data.find(token.encode())
            if at >= 0 and data.find(b"\n", at) >= 0:
                return data.find(b"\n", at) + 1
            if time.monotonic() > deadline:
                raise BenchError(f"origin {self.server.host} never logged marker {token} ({self.server.log})")
            time.sleep(0.02)


Host = tuple[Path, str, "Server | None"]  # its folder, the ref it installs, its registry mirror


def _host(
    root: Path, vp: str, ref: str, mirror: Server | None, extra: Sequence[str], env: Mapping[str, str]
) -> tuple[float, float]:
    """Run one host's install; return when it started and ended; raise BenchError if it failed."""
    argv = [vp, "install", ref, "--insecure", "--dest", str(root / "venv"), "--cache", str(root / "cache")]
    argv += ["--facts-dir", str(root / "facts"), *extra]
    if mirror is not None:
        argv += ["--mirror", f"http://{mirror.host}"]
    started = time.monotonic()
    proc = subprocess.run(argv, env=dict(env), capture_output=True, text=True, check=False)
    ended = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    (root / "venv-pull.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise BenchError(f"exit {proc.returncode}: {' '.join(argv)}\n{tail}")
    return started, ended


def _wave(
    hosts: Sequence[Host], vp: str, extra: Sequence[str], env: Mapping[str, str]
) -> list[tuple[float, float]]:
    """Start every host's install at once; return each one's (start, end)."""
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return list(pool.map(lambda h: _host(h[0], vp, h[1], h[2], extra, env), hosts))


def _timing(spans: Sequence[tuple[float, float]]) -> tuple[float, str]:
    """Return the fleet's wall time and a note with the hosts' own p50 and p99."""
    own = [end - start for start, end in spans]
    cuts = statistics.quantiles(own, n=100, method="inclusive")
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return wall, f"per host p50 {cuts[49]:.1f} s, p99 {cuts[98]:.1f} s"


def run(ctx: Context, *, hosts: int = 40, paths: Sequence[str] = PATHS) -> list[Row]:
    if hosts < CACHES:
        raise BenchError(f"--fleet-hosts {hosts}: at least {CACHES}, one per cache")
    section_header(
        f"{SECTION}: {hosts} hosts install {ctx.recipe.path.name} at once, via caches or the origin"
    )
    work = fresh(ctx.work / "fleet")
    work.mkdir(parents=True)
    art = ctx.artifact()
    log = ctx.log("fleet")
    vp = tool("venv-pull")
    extra = ctx.install_args()
    layers = {layer.digest for layer in art.layers}  # what an install pulls (its config of a few kB aside)
    ideal = CACHES * sum(layer.size for layer in art.layers)
    rows: list[Row] = []
    if "http" in paths:
        rows += _http_path(
            work / "http", art.layout, f"{art.name}:{art.tag}", hosts, layers, ideal, vp, extra, ctx
        )
    if "registry" not in paths:
        return rows
    with start_registry(work / "origin", log_level="info") as server:
        origin = _Origin(server)
        check(
            [tool("venvship"), "publish", art.ref, f"{server.host}/bench", "--insecure"], env=ctx.env, log=log
        )
        ref = f"{server.host}/bench/{art.name}:{art.tag}"

        def fleet(case: str, *, caches: bool, canary: bool) -> tuple[float, str, int]:
            folder = fresh(work / case)
            servers = [
                start_registry(folder / f"cache-{i}", proxy=f"http://{server.host}") for i in range(CACHES)
            ]
            try:
                behind = [servers[i * CACHES // hosts] if caches else None for i in range(hosts)]
                plan = [(folder / f"host-{i:03d}", ref, mirror) for i, mirror in enumerate(behind)]
                first = [plan[0], plan[-1]] if canary else []
                step(f"{case}: {hosts} hosts" + (", a canary per cache first" if canary else ""))
                origin.mark()
                spans = _wave(first, vp, extra, ctx.env) if first else []
                spans += _wave([p for p in plan if p not in first], vp, extra, ctx.env)
                wall, note = _timing(spans)
                return wall, note, origin.blob_bytes(layers)
            finally:
                for cache in servers:
                    cache.stop()

        cold = fleet("caches-cold", caches=True, canary=False)
        canary = fleet("caches-canary", caches=True, canary=True)
        alone = fleet("origin-alone", caches=False, canary=False)
    for label, (wall, note, served) in (
        ("2 pull-through caches, cold, all at once", cold),
        ("2 pull-through caches, one canary per cache first", canary),
    ):
        rows.append(
            Row(
                SECTION,
                f"{hosts} hosts, {label}: wall",
                Stats.value(wall),
                "venv-pull --mirror CACHE (origin as fallback)",
                Stats.value(alone[0]),
                "every host at the origin alone",
                note=note,
            )
        )
        rows.append(
            Row(
                SECTION,
                f"{hosts} hosts, {label}: blob bytes the origin served",
                Stats.value(served),
                "origin's log",
                Stats.value(ideal),
                "ideal: one copy per cache",
                CANARY_BYTES if "canary" in label else None,
                note=f"{served / ideal:.1f} copies per cache",
                unit="bytes",
            )
        )
    rows.append(
        Row(
            SECTION,
            f"{hosts} hosts, every host at the origin alone",
            Stats.value(alone[2]),
            "blob bytes the origin served",
            Stats.value(ideal),
            "ideal with 2 caches: one copy per cache",
            note=f"{alone[1]}; wall {alone[0]:.1f} s",
            unit="bytes",
        )
    )
    return rows


def _http_path(
    work: Path,
    layout: Path,
    name_tag: str,
    hosts: int,
    layers: set[str],
    ideal: int,
    vp: str,
    extra: Sequence[str],
    ctx: Context,
) -> list[Row]:
    """The layout on an nginx origin, behind two caching nginx proxies, every host cold at once."""
    step(f"http: {hosts} hosts through {CACHES} caching nginx proxies, cold, all at once")
    with start_origin(work / "origin", layout=layout, path="venvs") as server:
        origin = OriginLog(server)
        caches = [start_cache(work / f"cache-{i}", origin=server) for i in range(CACHES)]
        try:
            refs = [f"oci+http://{caches[i * CACHES // hosts].host}/venvs:{name_tag}" for i in range(hosts)]
            plan: list[Host] = [(work / f"host-{i:03d}", ref, None) for i, ref in enumerate(refs)]
            origin.mark()
            spans = _wave(plan, vp, ["--insecure", *extra], ctx.env)
            served = origin.blob_bytes(layers)
        finally:
            for cache in caches:
                cache.stop()
    wall, note = _timing(spans)
    label = f"{hosts} hosts over HTTP, {CACHES} caching nginx proxies, cold, all at once"
    return [
        Row(SECTION, f"{label}: wall", Stats.value(wall), "venv-pull oci+http://CACHE/…", note=note),
        Row(
            SECTION,
            f"{label}: blob bytes the origin served",
            Stats.value(served),
            "origin nginx's access log",
            Stats.value(ideal),
            "ideal: one copy per cache",
            HTTP_BYTES,
            note=f"{served / ideal:.2f} copies per cache",
            unit="bytes",
        ),
    ]
