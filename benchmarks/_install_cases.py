"""The install section's cases after the cold installs: a second venv on a host whose store holds
every distribution, the no-op rerun, the upgrade of one pin, and venv-pull's own peak RSS."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from _common import Artifact, step
from _install_setup import NO_CHECK, SECTION, Bench, where
from _procs import Run, Series, Stats, check, fresh, run_timed, sh
from _rows import Row, Target

SECOND_VENV = Target(max_factor=2.0)  # every distribution on the host already, against uv warm
UPGRADE = Target(max_seconds=0.5)  # one changed distribution, with bytecode
NOOP = Target(max_seconds=0.1)
PEAK_RSS = Target(max_mib=60.0)

# venv-pull as its console script runs it, writing its own process's peak RSS (KiB) to argv[1]:
# GNU time reports the largest process of the tree, which holds uv and the health check's
# interpreter too.
_SELF_RSS = """
import resource, sys
from venvship.cli.venv_pull_main import main
out = sys.argv.pop(1)
try:
    code = main(sys.argv[1:])
finally:
    with open(out, "w") as fh:
        fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(code)
"""


def second_venv(b: Bench, art: Artifact) -> tuple[list[Row], Path]:
    """Install ``art`` again into a new venv of a host whose store holds it; return the rows and
    that host's blob cache (primed, for the no-op)."""
    warm = b.work / "vp-warm-cache"
    check(b.venv_pull(art, b.work / "vp-prime", warm), env=b.ctx.env, log=b.log)
    # uv's cache warm too: one untimed install fills it.
    check(b.uv_fresh(fresh(b.work / "uv-venv"), compile_=False), env=b.uv_env, log=b.log)
    step(
        f"second venv on the host, {b.runs} rounds of: venv-pull and uv with a warm cache, each with and without bytecode"
    )
    vp_warm, uv_warm, vp_warm_nc, uv_warm_nc = b.interleaved(
        b.vp_series(art, b.work / "vp-warm", warm, before=lambda i: fresh(b.work / "vp-warm")),
        b.series(
            lambda i: b.uv_fresh(b.work / "uv-venv", compile_=True),
            env=b.uv_env,
            before=lambda i: fresh(b.work / "uv-venv"),
        ),
        b.vp_series(
            art, b.work / "vp-warm-nc", warm, "--no-compile", before=lambda i: fresh(b.work / "vp-warm-nc")
        ),
        b.series(
            lambda i: b.uv_fresh(b.work / "uv-venv-nc", compile_=False),
            env=b.uv_env,
            before=lambda i: fresh(b.work / "uv-venv-nc"),
        ),
    )
    b.uv_runs += vp_warm + vp_warm_nc
    rows = [
        Row(
            SECTION,
            "second venv on the host (every distribution in its store), bytecode",
            Stats.of(vp_warm),
            "venv-pull install (links from the store)",
            Stats.of(uv_warm),
            f"{b.uv_label} --compile-bytecode, warm uv cache",
            SECOND_VENV,
            where=where(vp_warm),
        ),
        Row(
            SECTION,
            "second venv on the host (every distribution in its store), no bytecode",
            Stats.of(vp_warm_nc),
            "venv-pull install --no-compile (links from the store)",
            Stats.of(uv_warm_nc),
            f"{b.uv_label}, warm uv cache",
            SECOND_VENV,
            where=where(vp_warm_nc),
        ),
    ]
    return rows, warm


def noop(b: Bench, art: Artifact, warm: Path) -> list[Row]:
    """Rerun the install of the second venv: nothing to do."""
    step(f"no-op reruns, {b.runs} rounds of venv-pull and uv")
    vp_noop, uv_noop = b.interleaved(
        b.vp_series(art, b.work / "vp-warm", warm),
        b.series(lambda i: sh(b.uv_install(b.work / "uv-venv", b.req, compile_=True)), env=b.uv_env),
    )
    b.uv_runs += vp_noop
    return [
        Row(
            SECTION,
            "no-op rerun",
            Stats.of(vp_noop),
            "venv-pull install (unchanged)",
            Stats.of(uv_noop),
            "uv pip install (all already satisfied)",
            NOOP,
        )
    ]


def upgrade(b: Bench, art: Artifact, art2: Artifact, req2: Path, pin: str) -> list[Row]:
    """Install ``art2`` (one pin changed) over ``art`` on a host whose cache holds only ``art``."""

    def upgrade(root: Path, *extra: str) -> Series:
        cache = root / "cache"

        def prepare(i: int) -> None:  # untimed: the first artifact, installed from a new cache
            fresh(root)
            check(b.venv_pull(art, root, cache, *extra), env=b.ctx.env, log=b.log)

        return b.vp_series(art2, root, cache, *extra, before=prepare)

    def uv_upgrade(venv: Path, *, compile_: bool) -> Series:
        return b.series(
            lambda i: sh(b.uv_install(venv, req2, compile_=compile_)),
            env=b.uv_env,
            before=lambda i: (
                fresh(venv),
                check(b.uv_fresh(venv, compile_=compile_), env=b.uv_env, log=b.log),
            ),
        )

    step(
        f"upgrade {pin}, {b.runs} rounds of: venv-pull and uv in place, with and without bytecode (each from a new host)"
    )
    vp_up, uv_up, vp_up_nc, uv_up_nc, vp_up_nc_nocheck = b.interleaved(
        upgrade(b.work / "vp-up"),
        uv_upgrade(b.work / "uv-up", compile_=True),
        upgrade(b.work / "vp-up-nc", "--no-compile"),
        uv_upgrade(b.work / "uv-up-nc", compile_=False),
        upgrade(b.work / "vp-up-nc", "--no-compile", *NO_CHECK),
    )
    b.uv_runs += vp_up + vp_up_nc + vp_up_nc_nocheck
    up_case = f"upgrade one package ({pin}), blob cache holding the first artifact"
    return [
        Row(
            SECTION,
            f"{up_case}, bytecode",
            Stats.of(vp_up),
            "venv-pull install (new generation)",
            Stats.of(uv_up),
            "uv pip install in place --compile-bytecode, warm uv cache",
            UPGRADE,
            where=where(vp_up),
        ),
        Row(
            SECTION,
            f"{up_case}, no bytecode",
            Stats.of(vp_up_nc),
            "venv-pull install --no-compile",
            Stats.of(uv_up_nc),
            "uv pip install in place, warm uv cache",
            where=where(vp_up_nc),
        ),
        Row(
            SECTION,
            f"{up_case}, no bytecode, health check replaced by `true`",
            Stats.of(vp_up_nc_nocheck),
            "venv-pull install --no-compile --check-command true",
            note="extra figure: what venv-pull's default health check costs",
        ),
    ]


def own_peak_rss(b: Bench, art: Artifact, art2: Artifact | None, cold: Path) -> list[Row]:
    """Measure venv-pull's own process as its console script runs (cold, then upgrade)."""
    step("venv-pull's own peak RSS: one cold install and one upgrade, as its console script runs")

    def own_rss(argv: list[str], before: Callable[[], object]) -> Run:
        before()
        out = b.work / "self-rss"
        run = run_timed([sys.executable, "-c", _SELF_RSS, out, *argv[1:]], env=b.ctx.env, log=b.log)
        return Run(wall=run.wall, rss_kib=int(out.read_text()), marks={})

    own = [own_rss(b.venv_pull(art, b.work / "rss", cold), lambda: (fresh(b.work / "rss"), fresh(cold)))]
    if art2:
        own.append(
            own_rss(
                b.venv_pull(art2, b.work / "rss", cold),
                lambda: check(b.venv_pull(art, b.work / "rss", cold), env=b.ctx.env, log=b.log),
            )
        )
    return [
        Row(
            SECTION,
            "peak RSS of venv-pull, every run of the install-tool uv artifact above",
            Stats.of(b.uv_runs),
            "venv-pull install (largest process of its tree)",
            target=PEAK_RSS,
            note="the tree holds uv, the bytecode workers and the health check's interpreter too;"
            " runs on every file system",
        ),
        Row(
            SECTION,
            "peak RSS of venv-pull's own process (cold install, then upgrade)",
            Stats.of(own),
            "venv-pull install (its own process: getrusage RUSAGE_SELF)",
            target=PEAK_RSS,
            fs=b.fs,
        ),
    ]
