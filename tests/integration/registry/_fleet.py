"""Helpers for mirror and fleet tests: tiny installable artifacts, pull-through caches, what an
origin's log says it served, and ``venv-pull install`` run as real processes."""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tests.integration.install.conftest import (
    DISTRO_PYTHON,
    SRC,
    make_config,
    make_wheel,
    wheel_of,
    with_layers,
)
from venvship.artifact.documents import Manifest, VenvConfig
from venvship.builder.package import write_to_layout
from venvship.oci.layout import Layout
from venvship.oci.publish import publish_layout
from venvship.oci.reference import RegistryRef

from ._support import RegistryServer, client_for, log_mark, start_registry

REPO = "fleet"  # the namespace artifacts are published under: HOST/fleet/demo:TAG


@dataclass(frozen=True)
class TinyArtifact:
    """One artifact written into its own layout: its config, the platform manifest, the index tag."""

    layout: Layout
    config: VenvConfig
    manifest: Manifest
    digest: str  # the platform manifest's: what ``venv-pull install --json`` reports
    tag: str

    @property
    def name(self) -> str:
        return self.config.name

    def layer(self, name: str) -> str:
        """Return the digest of distribution ``name``'s ready-to-run layer."""
        assert self.config.layers is not None
        return next(d.digest for d in self.config.layers.distributions if d.name == name)

    def pulled_blobs(self) -> dict[str, int]:
        """Return digest → size of what an empty cache pulls: the config and every layer."""
        assert self.config.layers is not None
        blobs = {d.digest: d.size for d in self.config.layers.distributions}
        return {**blobs, self.manifest.config.digest: self.manifest.config.size}

    def publish(self, server: RegistryServer) -> str:
        """Publish to ``server`` as ``HOST/fleet/NAME:TAG``; return that reference."""
        dest = RegistryRef(registry=server.host, repository=REPO)
        publish_layout(self.layout, [f"{self.name}:{self.tag}"], dest, client_for(server))
        return f"{server.host}/{REPO}/{self.name}:{self.tag}"


def tiny_artifact(
    root: Path,
    tool_wheels: Path,
    versions: Mapping[str, str],
    *,
    tag: str = "1.0",
    name: str = "demo",
    payload: int = 0,
) -> TinyArtifact:
    """Write an artifact ``name:tag`` locking one tiny wheel per ``distribution: version`` (with
    ``payload`` bytes of data that do not compress away; ready-to-run layers made by the build
    side's code) into ``root/oci``. Equal wheels make equal layers across artifacts."""
    wheels = [
        make_wheel(root.parent / "wheels", dist, version, extra=_payload(dist, version, payload))
        for dist, version in versions.items()
    ]
    uv = next(tool_wheels.glob("uv-*.whl"))
    config = make_config(lock=[wheel_of(w) for w in wheels], tools=[wheel_of(uv)], name=name, version=tag)
    files = {wheel_of(w).digest: w for w in [*wheels, uv]}
    config, files = with_layers(config, files, python=DISTRO_PYTHON, work=root.parent)
    layout = Layout.create(root / "oci")
    packaged = write_to_layout(layout, config, files)
    manifest = Manifest.from_bytes(packaged.manifest)
    return TinyArtifact(layout=layout, config=config, manifest=manifest, digest=packaged.digest, tag=tag)


def _payload(dist: str, version: str, size: int) -> dict[str, str]:
    """Return a wheel member of ``size`` bytes of hex (the same for the same wheel), or none."""
    if not size:
        return {}
    return {f"{dist}/data.txt": random.Random(f"{dist}-{version}").randbytes(size // 2).hex()}


def start_cache(workdir: Path, origin: RegistryServer) -> RegistryServer:
    """Start a pull-through cache of ``origin``: Debian's docker-registry with ``proxy.remoteurl``."""
    return start_registry(workdir, proxy=f"http://{origin.host}")


# -- what a registry served ----------------------------------------------------------------------

_BLOB_GET = re.compile(
    r'http\.request\.method=GET .*http\.request\.uri="?/v2/\S+?/blobs/(sha256:[0-9a-f]{64})"? '
    r'.*http\.request\.useragent=("[^"]*"|\S+) .*http\.response\.status=200 http\.response\.written=(\d+)'
)


@dataclass(frozen=True)
class BlobGet:
    """One blob a registry served whole: its digest, the bytes written and who asked."""

    digest: str
    written: int
    agent: str

    @property
    def by_venvship(self) -> bool:
        return self.agent == "venvship"


def blob_gets(server: RegistryServer, start: int) -> list[BlobGet]:
    """Return every successful blob GET ``server`` logged after ``start`` (see ``log_mark``)."""
    end = log_mark(server)
    text = server.log.read_bytes()[start:end].decode(errors="replace")
    found = [_BLOB_GET.search(line) for line in text.splitlines() if 'msg="response completed"' in line]
    return [
        BlobGet(digest=m.group(1), written=int(m.group(3)), agent=m.group(2).strip('"')) for m in found if m
    ]


# -- targets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One simulated host: its own destination and facts folder, and its own blob cache unless
    ``cache`` names one it shares."""

    root: Path
    cache: Path | None = None

    def argv(self, ref: str, *extra: str, verbose: bool = False) -> list[str]:
        return [
            sys.executable,
            "-m",
            "venvship.cli.venv_pull_main",
            *(["-v"] if verbose else []),
            "install",
            ref,
            "--dest",
            str(self.root / "venv"),
            "--cache",
            str(self.cache or self.root / "cache"),
            "--facts-dir",
            str(self.root / "facts"),
            "--no-distro-packages",
            "--json",
            *extra,
        ]


@dataclass(frozen=True)
class Outcome:
    """How one ``venv-pull install`` process ended: exit code, when it started and ended
    (``time.monotonic``), its JSON, stderr."""

    target: Target
    code: int
    started: float
    ended: float
    result: dict[str, Any]
    stderr: str

    @property
    def pulled_from(self) -> set[str]:
        return set(self.result.get("pulled_from", {}))


def _install(target: Target, ref: str, extra: Sequence[str], *, timeout: float, verbose: bool) -> Outcome:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    started = time.monotonic()
    proc = subprocess.Popen(
        target.argv(ref, *extra, verbose=verbose),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n(killed after {timeout} s)"
    ended = time.monotonic()
    result = json.loads(out) if proc.returncode == 0 else {}
    return Outcome(
        target=target, code=proc.returncode, started=started, ended=ended, result=result, stderr=err
    )


class Wave:
    """``venv-pull install`` processes started at once, each watched by a thread that notes when it
    ends; the test may act (kill a cache, move a tag) while they run."""

    def __init__(
        self,
        jobs: Sequence[tuple[Target, str, Sequence[str]]],
        *,
        timeout: float = 300,
        verbose: bool = False,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=len(jobs))
        self._futures = [
            self._pool.submit(_install, target, ref, extra, timeout=timeout, verbose=verbose)
            for target, ref, extra in jobs
        ]

    def done(self) -> int:
        return sum(f.done() for f in self._futures)

    def outcomes(self) -> list[Outcome]:
        """Wait for every install; return their outcomes, in the order of the jobs."""
        try:
            return [f.result() for f in self._futures]
        finally:
            self._pool.shutdown()


def wait_for(what: str, ready: Callable[[], bool], *, deadline: float = 120) -> None:
    """Poll ``ready`` every 20 ms until it holds; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not ready():
        if time.monotonic() > end:
            raise AssertionError(f"waited {deadline} s for {what}")
        time.sleep(0.02)


def failures(outcomes: Sequence[Outcome]) -> list[str]:
    """Return one line per failed install: its folder, exit code and last error line."""
    return [
        f"{o.target.root.name}: exit {o.code}: {(o.stderr.strip().splitlines() or ['?'])[-1]}"
        for o in outcomes
        if o.code != 0
    ]


def figures(outcomes: Sequence[Outcome]) -> str:
    """Return the wall time from the first start to the last end, p50 and p99 of the targets' own
    times, and the failures, in words."""
    wall = max(o.ended for o in outcomes) - min(o.started for o in outcomes)
    cuts = statistics.quantiles([o.ended - o.started for o in outcomes], n=100, method="inclusive")
    return (
        f"{len(outcomes)} targets, wall {wall:.1f} s, per target p50 {cuts[49]:.1f} s "
        f"p99 {cuts[98]:.1f} s, {len(failures(outcomes))} failed"
    )
