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
- extra rows: the install-tool pip artifact; ``--check-command true`` in place of the default
  health check (its cost); warm blob cache; one thread unzipping every wheel (a floor).
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import Artifact, Context, section_header, step
from _install_cases import noop, own_peak_rss, second_venv, upgrade
from _install_setup import NO_CHECK, SECTION, Bench, changed_wheels, extract_pip, extract_uv, recipe_variant
from _procs import Stats, check, fresh, q, sh, tool
from _rows import Row, Target
from _servers import start_http

# The pin changed for the upgrade case, per recipe name (--upgrade-pin picks another).
UPGRADE_PINS = {"keystone": "PyMySQL==1.1.2", "demo": "six==1.16.0"}

# Issue #13's targets. Cold installs against uv from an empty cache, per recipe (the small set of
# benchmarks/recipes/small.toml has one target, keystone's the others); the rest for every recipe.
COLD = {"keystone": (Target(max_factor=0.4), Target(max_factor=0.8)), "small": (Target(max_factor=1.0), None)}
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


def run(ctx: Context, *, upgrade_pin: str | None) -> list[Row]:
    section_header(f"{SECTION}: venv-pull install {ctx.recipe.path.name} vs pip and uv")
    work = fresh(ctx.work / "install")
    work.mkdir(parents=True)
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
    python = ctx.recipe.python_path(ctx.env)
    log = ctx.log("install")
    # One wheelhouse with both artifacts' wheels: the hashes in each requirements file pick.
    house = art.wheelhouse(work / "wheelhouse")
    for w in (*art2.packages, *art2.tools) if art2 else ():
        if art2 and not (house / w.filename).exists():
            (house / w.filename).symlink_to(art2.blob(w.sha256))
    req = art.hashed_requirements(work / "requirements.txt")
    req2 = art2.hashed_requirements(work / "requirements-upgrade.txt") if art2 else None
    # The baselines run the very pip and uv the artifacts carry, from folders as venv-pull does.
    pip_dir = extract_pip(art_pip.tool_wheel("pip"), work / "pip-tool")
    uv = extract_uv(art.tool_wheel("uv"), work / "uv-tool")
    uv_version = next(w.version for w in art.tools if w.name.lower() == "uv")
    b = Bench(
        ctx=ctx,
        work=work,
        log=log,
        vp=tool("venv-pull"),
        python=python,
        house=house,
        uv=uv,
        req=req,
        uv_env=dict(ctx.env, UV_CACHE_DIR=str(work / "uv-cache"), UV_NO_CONFIG="1"),
        uv_label=f"uv {uv_version} venv + pip install",
    )
    rows: list[Row] = []
    with start_http(house, work / "http.log") as http:
        url = f"http://{http.host}/"
        pip_env = dict(ctx.env, PIP_CACHE_DIR=str(work / "pip-cache"))
        pip_version = next(w.version for w in art_pip.tools if w.name.lower() == "pip")

        def pip_install(venv: Path, requirements: Path) -> str:
            # No --no-compile: pip's default compiles, as the original role's installs did.
            return (
                f"{q(venv / 'bin' / 'python')} {q(pip_dir / 'pip')} install -q --no-input --no-index"
                f" --find-links {q(url)} --trusted-host 127.0.0.1 --require-hashes --no-deps"
                f" -r {q(requirements)}"
            )

        def pip_fresh(venv: Path, requirements: Path) -> list[str]:
            return sh(f"{q(python)} -m venv --without-pip {q(venv)}\n{pip_install(venv, requirements)}")

        # -- cold: empty blob cache, new venv ---------------------------------------------------
        cold = work / "vp-cold-cache"
        step(f"venv-pull (install-tool uv), empty blob cache, new venv: {b.runs} runs, and --no-compile")
        vp_cold = b.timed(
            lambda i: b.venv_pull(art, work / "vp-cold", cold),
            before=lambda i: (fresh(work / "vp-cold"), fresh(cold)),
        )
        vp_cold_nc = b.timed(
            lambda i: b.venv_pull(art, work / "vp-cold-nc", cold, "--no-compile"),
            before=lambda i: (fresh(work / "vp-cold-nc"), fresh(cold)),
        )
        vp_cold_nc_nocheck = b.timed(
            lambda i: b.venv_pull(art, work / "vp-cold-nc", cold, "--no-compile", *NO_CHECK),
            before=lambda i: (fresh(work / "vp-cold-nc"), fresh(cold)),
        )
        b.uv_runs += vp_cold + vp_cold_nc + vp_cold_nc_nocheck
        step(f"(b) {b.uv_label}, empty uv cache: {b.runs} runs with --compile-bytecode, {b.runs} without")
        uv_cold = b.timed(
            lambda i: b.uv_fresh(work / "uv-venv", compile_=True),
            env=b.uv_env,
            before=lambda i: (fresh(work / "uv-venv"), fresh(work / "uv-cache")),
        )
        uv_cold_nc = b.timed(
            lambda i: b.uv_fresh(work / "uv-venv-nc", compile_=False),
            env=b.uv_env,
            before=lambda i: (fresh(work / "uv-venv-nc"), fresh(work / "uv-cache")),
        )
        pip_label = f"(a) venv + pip {pip_version} via HTTP find-links, empty pip cache (compiles)"
        step(f"(a) venv + pip {pip_version} via HTTP find-links, empty pip cache: {b.runs} runs")
        # pip's own modules get their bytecode once, untimed: an installed pip would have it.
        check([python, pip_dir / "pip", "--version"], env=pip_env, log=log)
        pip_cold = b.timed(
            lambda i: pip_fresh(work / "pip-venv", req),
            env=pip_env,
            before=lambda i: (fresh(work / "pip-venv"), fresh(work / "pip-cache")),
        )
        step(f"floor: one thread unzipping every wheel of the lock: {b.runs} runs")
        unzip = b.timed(
            lambda i: [
                sys.executable,
                "-c",
                _UNZIP,
                work / "unzip",
                *(art.blob(w.sha256) for w in art.packages),
            ],
            before=lambda i: fresh(work / "unzip"),
        )
        cold_case = f"cold: empty cache, new venv, {len(art.packages)} distributions"
        cold_bytecode, cold_plain = COLD.get(ctx.recipe.name, COLD["keystone"])
        rows += [
            Row(
                SECTION,
                f"{cold_case}, bytecode",
                Stats.of(vp_cold),
                "venv-pull install (unpacks the layers, their bytecode included)",
                Stats.of(uv_cold),
                f"(b) {b.uv_label} --compile-bytecode, empty uv cache",
                cold_bytecode,
            ),
            Row(
                SECTION,
                f"{cold_case}, no bytecode",
                Stats.of(vp_cold_nc),
                "venv-pull install --no-compile",
                Stats.of(uv_cold_nc),
                f"(b) {b.uv_label}, empty uv cache",
                cold_plain,
            ),
        ]
        rows += [
            Row(
                SECTION,
                f"{cold_case}, bytecode",
                Stats.of(vp_cold),
                "venv-pull install",
                Stats.of(pip_cold),
                pip_label,
                note="extra figure: the original role's way",
            ),
            Row(
                SECTION,
                f"{cold_case}, venv-pull without bytecode",
                Stats.of(vp_cold_nc),
                "venv-pull install --no-compile",
                Stats.of(pip_cold),
                pip_label,
                note="extra figure: the original role's way",
            ),
        ]
        step(f"build time the layers add: venvship build making them, then keeping them: {b.runs} runs each")
        builds = work / "builds"

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

        making = b.timed(build, before=lambda i: (fresh(builds), fresh(ctx.cache / "layers")))
        keeping = b.timed(build, before=lambda i: fresh(builds))
        kept = Stats.of(keeping).median
        rows.append(
            Row(
                SECTION,
                "build time the ready-to-run layers add per platform",
                Stats(
                    walls=tuple(max(0.0, r.wall - kept) for r in making),
                    rss_kib=max(r.rss_kib for r in making),
                ),
                f"venvship build making the layers, less one keeping them ({kept:.2f} s)",
                Stats.of(uv_cold),
                f"(b) {b.uv_label} --compile-bytecode, empty uv cache",
                LAYERS_MADE,
            )
        )
        pulled = sum(d.size for d in art.layers)
        wheels_size = sum(w.size for w in art.packages)
        rows.append(
            Row(
                SECTION,
                "bytes a target pulls: the layers, against the wheels of the lock",
                Stats.value(pulled),
                f"{len(art.layers)} ready-to-run layers",
                Stats.value(wheels_size),
                f"{len(art.packages)} wheels",
                PULLED,
                unit="bytes",
            )
        )
        rows.append(
            Row(
                SECTION,
                f"{cold_case}, no bytecode, health check replaced by `true`",
                Stats.of(vp_cold_nc_nocheck),
                "venv-pull install --no-compile --check-command true",
                Stats.of(uv_cold_nc),
                f"(b) {b.uv_label}, empty uv cache",
                note="extra figure: what venv-pull's default health check costs",
            )
        )
        rows.append(
            Row(
                SECTION,
                f"{cold_case}: floor",
                Stats.of(unzip),
                "python zipfile extractall of every wheel, one thread",
                note="no venv, no RECORD, no bytecode: what unpacking alone costs here",
            )
        )
        step(f"venv-pull --from-wheels (install-tool pip and uv), empty blob cache, new venv: {b.runs} runs")
        vp_cold_wheels = b.timed(
            lambda i: b.venv_pull(art, work / "vp-cold-wheels", cold, "--from-wheels"),
            before=lambda i: (fresh(work / "vp-cold-wheels"), fresh(cold)),
        )
        vp_cold_pip = b.timed(
            lambda i: b.venv_pull(art_pip, work / "vp-cold-pip", cold, "--from-wheels"),
            before=lambda i: (fresh(work / "vp-cold-pip"), fresh(cold)),
        )
        rows += [
            Row(
                SECTION,
                f"{cold_case}, bytecode, --from-wheels (install-tool uv)",
                Stats.of(vp_cold_wheels),
                "venv-pull install --from-wheels (uv installs, venv-pull compiles)",
                Stats.of(uv_cold),
                f"(b) {b.uv_label} --compile-bytecode, empty uv cache",
                note="extra figure: the wheels' way on the target, kept for sites that want it",
            ),
            Row(
                SECTION,
                f"{cold_case}, bytecode, --from-wheels (install-tool pip)",
                Stats.of(vp_cold_pip),
                "venv-pull install --from-wheels (pip installs, venv-pull compiles)",
                Stats.of(pip_cold),
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

    rows += own_peak_rss(b, art, art2, cold)
    return rows
