"""Install (#3, #13): ``venv-pull install`` from an OCI layout, unpacking the artifact's
ready-to-run layers (no pip or uv on the target), against pip and uv installing the same wheels.

The artifact is built with ``install-tool = "uv"`` (the bench builds copies of the recipe in the
work folder, relative paths kept valid, with either tool); the install-tool pip artifact gives
extra rows and carries the pip that (a) runs. venv-pull's layers carry their bytecode;
``--no-compile`` leaves it out.

- (a) ``python -m venv --without-pip`` + the artifact's own pip (extracted from its wheel once,
  as venv-pull runs it) installing with ``--no-index --require-hashes --no-deps`` from an HTTP
  find-links server (``python -m http.server`` on 127.0.0.1) serving the wheelhouse, with an empty
  pip cache: the original role's repo-server way. pip compiles bytecode.
- (b) ``uv venv`` + ``uv pip install --offline --no-index --find-links WHEELHOUSE`` with the uv
  the artifact carries and an empty uv cache (a new ``UV_CACHE_DIR`` each run), once with
  ``--compile-bytecode`` (against venv-pull's default) and once without (against ``--no-compile``).
- (c) upgrade: a second artifact with one pin changed, installed over the first on a host whose
  blob cache holds the first artifact only (each run starts from a new cache and destination the
  first artifact was installed into, untimed); with and without bytecode.
- no-op rerun; the peak RSS of every venv-pull run (largest process of its tree, as GNU time
  reports it) and of venv-pull's own process.
- the health check's own seconds, as venv-pull reports them, with and without bytecode.
- extra rows: the install-tool pip artifact; ``--check-command true`` in place of the default
  health check (its cost); warm blob cache; one thread unzipping every wheel (a floor).

Every case runs on a tmpfs and on disk (venv-pull's cache and venvs, the baselines' caches and
venvs, all on the file system under test), each tool interleaved with its baselines run by run;
the targets are judged on the tmpfs figures, and the disk figures stand beside them.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from _common import Artifact, Context, section_header, step
from _install_cases import noop, own_peak_rss, second_venv, upgrade
from _install_setup import (
    NO_CHECK,
    SECTION,
    Bench,
    changed_wheels,
    extract_pip,
    extract_uv,
    health_where,
    recipe_variant,
    where,
)
from _procs import Series, Stats, check, fresh, q, repeat, sh, tool
from _rows import Row, Target
from _servers import start_http

# The pin changed for the upgrade case, per recipe name (--upgrade-pin picks another).
UPGRADE_PINS = {"keystone": "PyMySQL==1.1.2", "demo": "six==1.16.0"}

# Issue #13's targets. Cold installs against uv from an empty cache, per recipe (the small set of
# benchmarks/recipes/small.toml has one target, keystone's the others); the rest for every recipe.
COLD = {"keystone": (Target(max_factor=0.4), Target(max_factor=1.5)), "small": (Target(max_factor=1.0), None)}
HEALTH = Target(max_seconds=0.2)  # the health check's own seconds, with and without bytecode
PULLED = Target(max_factor=1.8)  # bytes a target pulls against the wheels' bytes
LAYERS_MADE = Target(max_factor=1.0)  # build time the layers add against uv installing and compiling once

# Single-threaded unzip of every wheel of the lock: the floor no unpacking installer goes below.
_UNZIP = """
import sys, zipfile
dest = sys.argv[1]
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest)
"""


def run(ctx: Context, *, upgrade_pin: str | None, file_systems: dict[str, Path]) -> list[Row]:
    """Measure every install case on each of ``file_systems`` (name → a folder on it)."""
    section_header(f"{SECTION}: venv-pull install {ctx.recipe.path.name} vs pip and uv")
    art_own = ctx.artifact()
    # The targets' artifact (install-tool uv) and the one pip runs from (the baseline (a) needs
    # the pip wheel an install-tool pip artifact carries): the recipe's own and a copy with the
    # other tool, built from the same wheel cache.
    other = "pip" if art_own.install_tool == "uv" else "uv"
    other_recipe = recipe_variant(ctx, other, install_tool=other)
    art_other = ctx.artifact(other_recipe, label=other)
    art, art_pip = (art_own, art_other) if other == "pip" else (art_other, art_own)
    uv_recipe = ctx.recipe.path if other == "pip" else other_recipe
    step(f"install-tool uv: {art.ref}; install-tool pip: {art_pip.ref}")
    pin = upgrade_pin or UPGRADE_PINS.get(ctx.recipe.name)
    art2: Artifact | None = None
    if pin:
        art2 = ctx.artifact(recipe_variant(ctx, "uv-upgrade", install_tool="uv", pin=pin), label="uv-upgrade")
        step(f"upgrade artifacts {art2.tag}: {pin} ({changed_wheels(art, art2)})")
    rows: list[Row] = []
    first: Bench | None = None
    for fs, base in file_systems.items():
        step(f"-- on {fs}: {base}")
        b = _bench(ctx, base / "install", art, art_pip, art2, fs=fs)
        rows += [dataclasses.replace(row, fs=fs) for row in _measure(b, art, art_pip, art2, pin)]
        first = first or b
    assert first is not None
    rows += _layer_rows(first, art, uv_recipe)
    rows += own_peak_rss(first, art, art2, first.work / "vp-cold-cache")
    return rows


def _bench(
    ctx: Context, work: Path, art: Artifact, art_pip: Artifact, art2: Artifact | None, *, fs: str
) -> Bench:
    """Return the install section's run in ``work`` (made afresh): the wheelhouse with both
    artifacts' wheels (the hashes in each requirements file pick), the pip and uv the artifacts
    carry, extracted as venv-pull runs them."""
    fresh(work).mkdir(parents=True)
    house = art.wheelhouse(work / "wheelhouse")
    if art2:
        for w in (*art2.packages, *art2.tools):
            if not (house / w.filename).exists():
                (house / w.filename).symlink_to(art2.blob(w.sha256))
    extract_pip(art_pip.tool_wheel("pip"), work / "pip-tool")
    uv_version = next(w.version for w in art.tools if w.name.lower() == "uv")
    return Bench(
        ctx=ctx,
        work=work,
        log=ctx.log(f"install-{fs}"),
        vp=tool("venv-pull"),
        python=ctx.recipe.python_path(ctx.env),
        house=house,
        uv=extract_uv(art.tool_wheel("uv"), work / "uv-tool"),
        req=art.hashed_requirements(work / "requirements.txt"),
        uv_env=dict(ctx.env, UV_CACHE_DIR=str(work / "uv-cache"), UV_NO_CONFIG="1"),
        uv_label=f"uv {uv_version} venv + pip install",
        fs=fs,
    )


def _measure(b: Bench, art: Artifact, art_pip: Artifact, art2: Artifact | None, pin: str | None) -> list[Row]:
    """Every install case of one file system, each tool interleaved with its baselines."""
    work, ctx, python = b.work, b.ctx, b.python
    pip_dir = work / "pip-tool"
    req2 = art2.hashed_requirements(work / "requirements-upgrade.txt") if art2 else None
    rows: list[Row] = []
    with start_http(b.house, work / "http.log") as http:
        url = f"http://{http.host}/"
        pip_env = dict(ctx.env, PIP_CACHE_DIR=str(work / "pip-cache"))
        pip_version = next(w.version for w in art_pip.tools if w.name.lower() == "pip")

        def pip_fresh(venv: Path) -> list[str]:
            # No --no-compile: pip's default compiles, as the original role's installs did.
            return sh(
                f"{q(python)} -m venv --without-pip {q(venv)}\n"
                f"{q(venv / 'bin' / 'python')} {q(pip_dir / 'pip')} install -q --no-input --no-index"
                f" --find-links {q(url)} --trusted-host 127.0.0.1 --require-hashes --no-deps"
                f" -r {q(b.req)}"
            )

        # -- cold: empty blob cache, new venv; every tool and baseline in turn, run by run ------
        cold = work / "vp-cold-cache"

        def vp_cold(name: str, a: Artifact, *extra: str) -> Series:
            return b.vp_series(
                a, work / name, cold, *extra, before=lambda i: (fresh(work / name), fresh(cold))
            )

        def uv_cold(name: str, *, compile_: bool) -> Series:
            return b.series(
                lambda i: b.uv_fresh(work / name, compile_=compile_),
                env=b.uv_env,
                before=lambda i: (fresh(work / name), fresh(work / "uv-cache")),
            )

        # pip's own modules get their bytecode once, untimed: an installed pip would have it.
        check([python, pip_dir / "pip", "--version"], env=pip_env, log=b.log)
        step(
            f"cold installs, {b.runs} rounds of: venv-pull (bytecode, --no-compile, --check-command true,"
            f" --from-wheels with uv and pip), (b) {b.uv_label} with and without --compile-bytecode,"
            f" (a) venv + pip {pip_version} via HTTP find-links, one thread unzipping every wheel"
        )
        cold_runs = b.interleaved(
            vp_cold("vp-cold", art),
            uv_cold("uv-venv", compile_=True),
            vp_cold("vp-cold-nc", art, "--no-compile"),
            uv_cold("uv-venv-nc", compile_=False),
            vp_cold("vp-cold-nc", art, "--no-compile", *NO_CHECK),
            b.series(
                lambda i: pip_fresh(work / "pip-venv"),
                env=pip_env,
                before=lambda i: (fresh(work / "pip-venv"), fresh(work / "pip-cache")),
            ),
            b.series(
                lambda i: [
                    sys.executable,
                    "-c",
                    _UNZIP,
                    work / "unzip",
                    *(art.blob(w.sha256) for w in art.packages),
                ],
                before=lambda i: fresh(work / "unzip"),
            ),
            vp_cold("vp-cold-wheels", art, "--from-wheels"),
            vp_cold("vp-cold-pip", art_pip, "--from-wheels"),
        )
        vp, uv, vp_nc, uv_nc, vp_nc_nocheck, pip, unzip, vp_wheels, vp_pip = cold_runs
        b.uv_runs += vp + vp_nc + vp_nc_nocheck
        pip_label = f"(a) venv + pip {pip_version} via HTTP find-links, empty pip cache (compiles)"
        cold_case = f"cold: empty cache, new venv, {len(art.packages)} distributions"
        cold_bytecode, cold_plain = COLD.get(ctx.recipe.name, COLD["keystone"])
        uv_compile = f"(b) {b.uv_label} --compile-bytecode, empty uv cache"
        rows += [
            Row(
                SECTION,
                f"{cold_case}, bytecode",
                Stats.of(vp),
                "venv-pull install (unpacks the layers, their bytecode included)",
                Stats.of(uv),
                uv_compile,
                cold_bytecode,
                where=where(vp),
            ),
            Row(
                SECTION,
                f"{cold_case}, no bytecode",
                Stats.of(vp_nc),
                "venv-pull install --no-compile",
                Stats.of(uv_nc),
                f"(b) {b.uv_label}, empty uv cache",
                cold_plain,
                where=where(vp_nc),
            ),
            Row(
                SECTION,
                "health check of the cold install, bytecode (its own seconds, as venv-pull logs them)",
                Stats.of(vp, mark="health"),
                "venv-pull's import check as nobody",
                target=HEALTH,
                note="imports the recipe's packages, finds its console scripts' modules, loads every extension",
                where=health_where(vp),
            ),
            Row(
                SECTION,
                "health check of the cold install, no bytecode",
                Stats.of(vp_nc, mark="health"),
                "venv-pull's import check as nobody (--no-compile)",
                target=HEALTH,
                where=health_where(vp_nc),
            ),
            Row(
                SECTION,
                f"{cold_case}, bytecode",
                Stats.of(vp),
                "venv-pull install",
                Stats.of(pip),
                pip_label,
                note="extra figure: the original role's way",
            ),
            Row(
                SECTION,
                f"{cold_case}, venv-pull without bytecode",
                Stats.of(vp_nc),
                "venv-pull install --no-compile",
                Stats.of(pip),
                pip_label,
                note="extra figure: the original role's way",
            ),
            Row(
                SECTION,
                f"{cold_case}, no bytecode, health check replaced by `true`",
                Stats.of(vp_nc_nocheck),
                "venv-pull install --no-compile --check-command true",
                Stats.of(uv_nc),
                f"(b) {b.uv_label}, empty uv cache",
                note="extra figure: what venv-pull's default health check costs",
            ),
            Row(
                SECTION,
                f"{cold_case}: floor",
                Stats.of(unzip),
                "python zipfile extractall of every wheel, one thread",
                note="no venv, no RECORD, no bytecode: what unpacking alone costs here",
            ),
            Row(
                SECTION,
                f"{cold_case}, bytecode, --from-wheels (install-tool uv)",
                Stats.of(vp_wheels),
                "venv-pull install --from-wheels (uv installs, venv-pull compiles)",
                Stats.of(uv),
                uv_compile,
                note="extra figure: the wheels' way on the target, kept for sites that want it",
            ),
            Row(
                SECTION,
                f"{cold_case}, bytecode, --from-wheels (install-tool pip)",
                Stats.of(vp_pip),
                "venv-pull install --from-wheels (pip installs, venv-pull compiles)",
                Stats.of(pip),
                pip_label,
                note="extra figure",
            ),
        ]
        rows_warm, warm = second_venv(b, art)
        rows += rows_warm
        rows += noop(b, art, warm)
        if art2 and req2 and pin:
            rows += upgrade(b, art, art2, req2, pin)
        else:
            step(
                f"no upgrade case: no known pin to change for {ctx.recipe.name}"
                " (use --upgrade-pin NAME==VERSION)"
            )
    return rows


def _layer_rows(b: Bench, art: Artifact, uv_recipe: Path) -> list[Row]:
    """What the ready-to-run layers cost the build and the pull (measured once, not per file system)."""
    step(f"build time the layers add: venvship build making them, then keeping them: {b.runs} runs each")
    builds = b.work / "builds"
    ctx = b.ctx

    def build(i: int) -> list[str]:
        return [
            tool("venvship"),
            "build",
            str(uv_recipe),
            "--output",
            f"oci:{builds}",
            "--cache-dir",
            str(ctx.cache),
        ]

    making = repeat(
        b.runs, build, env=ctx.env, log=b.log, before=lambda i: (fresh(builds), fresh(ctx.cache / "layers"))
    )
    keeping = repeat(b.runs, build, env=ctx.env, log=b.log, before=lambda i: fresh(builds))
    kept = Stats.of(keeping).median
    uv = repeat(
        b.runs,
        lambda i: b.uv_fresh(b.work / "uv-venv", compile_=True),
        env=b.uv_env,
        log=b.log,
        before=lambda i: (fresh(b.work / "uv-venv"), fresh(b.work / "uv-cache")),
    )
    pulled = sum(d.size for d in art.layers)
    wheels_size = sum(w.size for w in art.packages)
    return [
        Row(
            SECTION,
            "build time the ready-to-run layers add per platform",
            Stats(
                walls=tuple(max(0.0, r.wall - kept) for r in making), rss_kib=max(r.rss_kib for r in making)
            ),
            f"venvship build making the layers, less one keeping them ({kept:.2f} s)",
            Stats.of(uv),
            f"(b) {b.uv_label} --compile-bytecode, empty uv cache",
            LAYERS_MADE,
            fs=b.fs,
        ),
        Row(
            SECTION,
            "bytes a target pulls: the layers, against the wheels of the lock",
            Stats.value(pulled),
            f"{len(art.layers)} ready-to-run layers",
            Stats.value(wheels_size),
            f"{len(art.packages)} wheels",
            PULLED,
            unit="bytes",
        ),
    ]
