"""Build (#2): ``venvship build`` against ``pip wheel`` with the same pip, constraints and Python.

- cold: empty venvship cache and empty pip cache, against a new venv with the same build tools
  plus ``pip wheel`` with an empty pip cache (venvship makes its builder venv too). One run.
- warm: venvship's wheel cache populated, a new output layout, against ``pip wheel`` into a new
  folder with a warm pip cache.
- no-op: the same build again (nothing changed), against the cheapest pip can do:
  ``pip wheel --no-index --find-links WHEELHOUSE``.
"""

from __future__ import annotations

import re

from _common import Context, section_header, step
from _procs import Run, Stats, fresh, q, repeat, run_timed, sh, tool
from _rows import Row

SECTION = "build"
# The steps of a build as venvship build -v times them ("LABEL: took 1.23s"), in their order.
STEPS = {
    "builder venv": "preparing the builder venv",
    "resolve": "resolving",
    "downloads": "downloading wheels",
    "wheel builds": "building wheels",
    "target checks": "checking the install against the targets' rules",
    "layers": "making ready-to-run layers",
    "writing": "writing ",
    "SBOM and provenance": "attaching the SBOM and provenance",
}
STEP_MARKS = {name: rf"^{re.escape(label)}.*: took (\d+\.\d+)s$" for name, label in STEPS.items()}


def where(run: Run) -> str:
    """Return where a build's time went, step by step, from the steps it timed itself."""
    parts = [f"{name} {run.marks[name]:.2f} s" for name in STEPS if name in run.marks]
    rest = run.wall - sum(run.marks.get(name, 0.0) for name in STEPS)
    return "; ".join([*parts, f"start, plan and the rest {rest:.2f} s"]) + f" (of {run.wall:.2f} s)"


def run(ctx: Context) -> list[Row]:
    section_header(f"{SECTION}: venvship build {ctx.recipe.path.name} vs pip wheel")
    work = fresh(ctx.work / "build")
    work.mkdir(parents=True)
    recipe = ctx.recipe
    python = recipe.python_path(ctx.env)
    req, cons = recipe.write_pip_inputs(work / "inputs")
    log = ctx.log("build")
    ours_env = dict(ctx.env, PIP_CACHE_DIR=str(work / "pip-cache-venvship"))
    base_env = dict(ctx.env, PIP_CACHE_DIR=str(work / "pip-cache-baseline"))
    bvenv = work / "baseline-venv"
    bpy = bvenv / "bin" / "python"
    # venvship builds without isolation, with the build tools of its builder venv; so does pip here.
    wheel_args = ["--no-build-isolation", "-r", str(req), "-c", str(cons)]

    def venvship_build(out: str) -> list[str]:
        return [
            tool("venvship"),
            "build",
            str(recipe.path),
            "--output",
            f"oci:{work / out}",
            "--cache-dir",
            str(ctx.cache),
        ]

    step("cold venvship build (empty caches), 1 run")
    fresh(ctx.cache)
    # -v: each step's own time (a step that does not happen, e.g. no download, has none).
    cold = [
        run_timed(
            [*venvship_build("out-cold"), "-v"], env=ours_env, log=log, marks=STEP_MARKS, require_marks=False
        )
    ]
    step("cold baseline: venv + build tools + pip wheel (empty pip cache), 1 run")
    tools = " ".join(q(r) for r in ("pip", *recipe.build_requirements))
    cold_base = repeat(
        1,
        lambda i: sh(
            f"{q(python)} -m venv {q(bvenv)}\n"
            f"{q(bpy)} -m pip install -q -c {q(cons)} {tools}\n"
            f"{q(bpy)} -m pip wheel -q {' '.join(map(q, wheel_args))} -w {q(work / 'wheelhouse')}"
        ),
        env=base_env,
        log=log,
    )
    step(f"warm venvship build (wheel cache populated, new layout), {ctx.runs} runs")
    warm = repeat(
        ctx.runs,
        lambda i: venvship_build(f"out-warm-{i}"),
        env=ours_env,
        log=log,
    )
    step(f"warm baseline: pip wheel (warm pip cache, new folder), {ctx.runs} runs")
    warm_base = repeat(
        ctx.runs,
        lambda i: [str(bpy), "-m", "pip", "wheel", "-q", *wheel_args, "-w", str(work / f"wh-warm-{i}")],
        env=base_env,
        log=log,
    )
    step(f"no-op venvship build (same inputs, same layout), {ctx.runs} runs")
    noop = repeat(
        ctx.runs,
        lambda i: venvship_build("out-cold"),
        env=ours_env,
        log=log,
        marks={"unchanged": r"\bunchanged\b"},
    )
    step(f"no-op baseline: pip wheel --no-index --find-links WHEELHOUSE, {ctx.runs} runs")
    noop_base = repeat(
        ctx.runs,
        lambda i: [
            str(bpy),
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-index",
            "--find-links",
            str(work / "wheelhouse"),
            *wheel_args,
            "-w",
            str(fresh(work / f"wh-noop-{i}")),
        ],
        env=base_env,
        log=log,
    )
    name = recipe.name
    return [
        Row(
            SECTION,
            f"cold build {name} (empty caches)",
            Stats.of(cold),
            base=Stats.of(cold_base),
            base_label="venv + tools + pip wheel (empty cache)",
            note="both include making their build venv and every download and sdist build",
            where=where(cold[0]),
        ),
        Row(
            SECTION,
            f"warm build {name} (caches populated, new output)",
            Stats.of(warm),
            base=Stats.of(warm_base),
            base_label="pip wheel (warm pip cache)",
        ),
        Row(
            SECTION,
            f"no-op rebuild {name}",
            Stats.of(noop),
            base=Stats.of(noop_base),
            base_label="pip wheel --no-index --find-links",
        ),
    ]
