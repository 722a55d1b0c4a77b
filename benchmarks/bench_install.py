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

import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Callable

from _common import Artifact, Context, RecipeInfo, section_header, step
from _procs import Argv, BenchError, Run, Stats, check, fresh, q, repeat, run_timed, sh, tool
from _rows import Row, Target
from _servers import start_http

SECTION = "install"

# The pin changed for the upgrade case, per recipe name (--upgrade-pin picks another).
UPGRADE_PINS = {"keystone": "PyMySQL==1.1.2", "demo": "six==1.16.0"}

# Issue #13's targets. Cold installs against uv from an empty cache, per recipe (the small set of
# benchmarks/recipes/small.toml has one target, keystone's the others); the rest for every recipe.
COLD = {"keystone": (Target(max_factor=0.4), Target(max_factor=0.8)), "small": (Target(max_factor=1.0), None)}
SECOND_VENV = Target(max_factor=2.0)  # every distribution on the host already, against uv warm
UPGRADE = Target(max_seconds=0.5)  # one changed distribution, with bytecode
NOOP = Target(max_seconds=0.1)
PULLED = Target(max_factor=1.8)  # bytes a target pulls against the wheels' bytes
LAYERS_MADE = Target(max_factor=1.0)  # build time the layers add against uv installing and compiling once
PEAK_RSS = Target(max_mib=60.0)

# Single-threaded unzip of every wheel of the lock: the floor no unpacking installer goes below.
_UNZIP = """
import sys, zipfile
dest = sys.argv[1]
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest)
"""


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
NO_CHECK = ("--check-command", "true")  # extra rows: what venv-pull's default health check costs


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def recipe_variant(
    ctx: Context, label: str, *, install_tool: str | None = None, pin: str | None = None
) -> Path:
    """Copy the recipe's folder into ``<work>/recipes-<label>`` and return the copied recipe, with
    ``install-tool`` set to ``install_tool`` and/or ``pin`` (``NAME==VERSION``) changed in its
    constraint files (then the version is suffixed ``-upgrade``). Relative paths stay valid."""
    src = ctx.recipe.path.parent
    dest = fresh(ctx.work / f"recipes-{label}")
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.py*", "__pycache__"))
    recipe = dest / ctx.recipe.path.name
    text = recipe.read_text()
    if install_tool:
        line = f'install-tool = "{install_tool}"'
        text, n = re.subn(r'(?m)^install-tool\s*=\s*"[^"]*"\s*$', line, text, count=1)
        if n != 1:  # not set in the recipe: put it under the version, inside [venv]
            text, n = re.subn(r'(?m)^(version\s*=\s*"[^"]+".*)$', rf"\g<1>\n{line}", text, count=1)
        if n != 1:
            raise BenchError(f"{ctx.recipe.path}: no version line to put install-tool under")
    if pin:
        text, n = re.subn(r'(?m)^(version\s*=\s*")([^"]+)(")', r"\g<1>\g<2>-upgrade\g<3>", text, count=1)
        if n != 1:
            raise BenchError(f"{ctx.recipe.path}: no version line to change")
    recipe.write_text(text)
    if pin:
        _change_pin(recipe, pin)
    return recipe


def _change_pin(recipe: Path, pin: str) -> None:
    name, _, version = pin.partition("==")
    if not version:
        raise BenchError(f"--upgrade-pin {pin!r}: write NAME==VERSION")
    pin_line = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<op>===?)\s*(?P<version>\S+)\s*$")
    for cfile in RecipeInfo.load(recipe).constraint_files:
        lines = cfile.read_text().splitlines(keepends=True)
        for i, line in enumerate(lines):
            m = pin_line.match(line.strip())
            if m and _canon(m.group("name")) == _canon(name):
                if m.group("version") == version:
                    raise BenchError(f"--upgrade-pin {pin}: {cfile.name} already pins that version")
                lines[i] = f"{m.group('name')}{m.group('op')}{version}\n"
                cfile.write_text("".join(lines))
                return
    raise BenchError(f"--upgrade-pin {pin}: {name} is pinned in none of the recipe's constraint files")


def _extract_uv(wheel: Path, dest: Path) -> Path:
    """Return the uv binary of ``wheel`` extracted to ``dest/uv`` (the baselines run the uv venv-pull runs)."""
    fresh(dest).mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        member = next((n for n in zf.namelist() if n.endswith(".data/scripts/uv")), None)
        if member is None:
            raise BenchError(f"{wheel}: no .data/scripts/uv in the uv wheel")
        (dest / "uv").write_bytes(zf.read(member))
    (dest / "uv").chmod(0o755)
    return dest / "uv"


def _extract_pip(wheel: Path, dest: Path) -> Path:
    fresh(dest).mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest)
    return dest


def _changed(art: Artifact, art2: Artifact) -> str:
    changed = {w.filename for w in art2.packages} - {w.filename for w in art.packages}
    return ", ".join(sorted(changed)) or "no wheel changed!"


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
        step(f"upgrade artifacts {art2.tag}: {pin} ({_changed(art, art2)})")
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
    pip_dir = _extract_pip(art_pip.tool_wheel("pip"), work / "pip-tool")
    uv = _extract_uv(art.tool_wheel("uv"), work / "uv-tool")
    uv_version = next(w.version for w in art.tools if w.name.lower() == "uv")
    vp = tool("venv-pull")
    runs = ctx.runs
    uv_runs: list[Run] = []  # every venv-pull run of the uv artifact, for the peak RSS row

    def venv_pull(a: Artifact, root: Path, cache: Path, *extra: str) -> list[str]:
        return [
            vp,
            "install",
            a.ref,
            "--dest",
            str(root / "venv"),
            "--cache",
            str(cache),
            "--facts-dir",
            str(root / "facts"),
            *ctx.install_args(),
            *extra,
        ]

    def timed(
        command: Callable[[int], Argv],
        *,
        env: dict[str, str] | None = None,
        before: Callable[[int], object] | None = None,
    ) -> list[Run]:
        return repeat(runs, command, env=env or ctx.env, log=log, before=before)

    def uv_install(venv: Path, requirements: Path, *, compile_: bool) -> str:
        return (
            f"{q(uv)} pip install -q --python {q(venv / 'bin' / 'python')} --offline --no-index"
            f" --find-links {q(house)} --require-hashes --no-deps"
            + (" --compile-bytecode" if compile_ else "")
            + f" -r {q(requirements)}"
        )

    def uv_fresh(venv: Path, *, compile_: bool) -> list[str]:
        return sh(
            f"{q(uv)} venv -q --python {q(python)} {q(venv)}\n{uv_install(venv, req, compile_=compile_)}"
        )

    uv_env = dict(ctx.env, UV_CACHE_DIR=str(work / "uv-cache"), UV_NO_CONFIG="1")
    uv_label = f"uv {uv_version} venv + pip install"
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
        step(f"venv-pull (install-tool uv), empty blob cache, new venv: {runs} runs, and --no-compile")
        vp_cold = timed(
            lambda i: venv_pull(art, work / "vp-cold", cold),
            before=lambda i: (fresh(work / "vp-cold"), fresh(cold)),
        )
        vp_cold_nc = timed(
            lambda i: venv_pull(art, work / "vp-cold-nc", cold, "--no-compile"),
            before=lambda i: (fresh(work / "vp-cold-nc"), fresh(cold)),
        )
        vp_cold_nc_nocheck = timed(
            lambda i: venv_pull(art, work / "vp-cold-nc", cold, "--no-compile", *NO_CHECK),
            before=lambda i: (fresh(work / "vp-cold-nc"), fresh(cold)),
        )
        uv_runs += vp_cold + vp_cold_nc + vp_cold_nc_nocheck
        step(f"(b) {uv_label}, empty uv cache: {runs} runs with --compile-bytecode, {runs} without")
        uv_cold = timed(
            lambda i: uv_fresh(work / "uv-venv", compile_=True),
            env=uv_env,
            before=lambda i: (fresh(work / "uv-venv"), fresh(work / "uv-cache")),
        )
        uv_cold_nc = timed(
            lambda i: uv_fresh(work / "uv-venv-nc", compile_=False),
            env=uv_env,
            before=lambda i: (fresh(work / "uv-venv-nc"), fresh(work / "uv-cache")),
        )
        pip_label = f"(a) venv + pip {pip_version} via HTTP find-links, empty pip cache (compiles)"
        step(f"(a) venv + pip {pip_version} via HTTP find-links, empty pip cache: {runs} runs")
        # pip's own modules get their bytecode once, untimed: an installed pip would have it.
        check([python, pip_dir / "pip", "--version"], env=pip_env, log=log)
        pip_cold = timed(
            lambda i: pip_fresh(work / "pip-venv", req),
            env=pip_env,
            before=lambda i: (fresh(work / "pip-venv"), fresh(work / "pip-cache")),
        )
        step(f"floor: one thread unzipping every wheel of the lock: {runs} runs")
        unzip = timed(
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
                f"(b) {uv_label} --compile-bytecode, empty uv cache",
                cold_bytecode,
            ),
            Row(
                SECTION,
                f"{cold_case}, no bytecode",
                Stats.of(vp_cold_nc),
                "venv-pull install --no-compile",
                Stats.of(uv_cold_nc),
                f"(b) {uv_label}, empty uv cache",
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
        step(f"build time the layers add: venvship build making them, then keeping them: {runs} runs each")
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

        making = timed(build, before=lambda i: (fresh(builds), fresh(ctx.cache / "layers")))
        keeping = timed(build, before=lambda i: fresh(builds))
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
                f"(b) {uv_label} --compile-bytecode, empty uv cache",
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
                f"(b) {uv_label}, empty uv cache",
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
        step(f"venv-pull --from-wheels (install-tool pip and uv), empty blob cache, new venv: {runs} runs")
        vp_cold_wheels = timed(
            lambda i: venv_pull(art, work / "vp-cold-wheels", cold, "--from-wheels"),
            before=lambda i: (fresh(work / "vp-cold-wheels"), fresh(cold)),
        )
        vp_cold_pip = timed(
            lambda i: venv_pull(art_pip, work / "vp-cold-pip", cold, "--from-wheels"),
            before=lambda i: (fresh(work / "vp-cold-pip"), fresh(cold)),
        )
        rows += [
            Row(
                SECTION,
                f"{cold_case}, bytecode, --from-wheels (install-tool uv)",
                Stats.of(vp_cold_wheels),
                "venv-pull install --from-wheels (uv installs, venv-pull compiles)",
                Stats.of(uv_cold),
                f"(b) {uv_label} --compile-bytecode, empty uv cache",
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

        # -- a second venv on the host: the store holds every distribution already ------------------
        warm = work / "vp-warm-cache"
        check(venv_pull(art, work / "vp-prime", warm), env=ctx.env, log=log)
        step(f"venv-pull, second venv on the host: {runs} runs, and --no-compile; uv with a warm cache")
        vp_warm = timed(
            lambda i: venv_pull(art, work / "vp-warm", warm), before=lambda i: fresh(work / "vp-warm")
        )
        vp_warm_nc = timed(
            lambda i: venv_pull(art, work / "vp-warm-nc", warm, "--no-compile"),
            before=lambda i: fresh(work / "vp-warm-nc"),
        )
        uv_runs += vp_warm + vp_warm_nc
        uv_warm = timed(
            lambda i: uv_fresh(work / "uv-venv", compile_=True),
            env=uv_env,
            before=lambda i: fresh(work / "uv-venv"),
        )
        uv_warm_nc = timed(
            lambda i: uv_fresh(work / "uv-venv-nc", compile_=False),
            env=uv_env,
            before=lambda i: fresh(work / "uv-venv-nc"),
        )
        rows += [
            Row(
                SECTION,
                "second venv on the host (every distribution in its store), bytecode",
                Stats.of(vp_warm),
                "venv-pull install (links from the store)",
                Stats.of(uv_warm),
                f"{uv_label} --compile-bytecode, warm uv cache",
                SECOND_VENV,
            ),
            Row(
                SECTION,
                "second venv on the host (every distribution in its store), no bytecode",
                Stats.of(vp_warm_nc),
                "venv-pull install --no-compile (links from the store)",
                Stats.of(uv_warm_nc),
                f"{uv_label}, warm uv cache",
                SECOND_VENV,
            ),
        ]

        # -- no-op: the venv is already what was asked for ------------------------------------------
        step(f"no-op reruns: {runs} runs each")
        vp_noop = timed(lambda i: venv_pull(art, work / "vp-warm", warm))
        uv_runs += vp_noop
        uv_noop = timed(lambda i: sh(uv_install(work / "uv-venv", req, compile_=True)), env=uv_env)
        rows.append(
            Row(
                SECTION,
                "no-op rerun",
                Stats.of(vp_noop),
                "venv-pull install (unchanged)",
                Stats.of(uv_noop),
                "uv pip install (all already satisfied)",
                NOOP,
            )
        )

        # -- upgrade: one wheel changed, the blob cache holding the first artifact ---------------
        if art2 and req2:

            def upgrade(a1: Artifact, a2: Artifact, root: Path, *extra: str) -> list[Run]:
                cache = root / "cache"

                def prepare(i: int) -> None:  # untimed: the first artifact, installed from a new cache
                    fresh(root)
                    check(venv_pull(a1, root, cache, *extra), env=ctx.env, log=log)

                return timed(lambda i: venv_pull(a2, root, cache, *extra), before=prepare)

            step(f"upgrade {pin}: {runs} runs each, with and without bytecode (each from a new host)")
            vp_up = upgrade(art, art2, work / "vp-up")
            vp_up_nc = upgrade(art, art2, work / "vp-up-nc", "--no-compile")
            vp_up_nc_nocheck = upgrade(art, art2, work / "vp-up-nc", "--no-compile", *NO_CHECK)
            uv_runs += vp_up + vp_up_nc + vp_up_nc_nocheck
            uv_up = timed(
                lambda i: sh(uv_install(work / "uv-up", req2, compile_=True)),
                env=uv_env,
                before=lambda i: (
                    fresh(work / "uv-up"),
                    check(uv_fresh(work / "uv-up", compile_=True), env=uv_env, log=log),
                ),
            )
            uv_up_nc = timed(
                lambda i: sh(uv_install(work / "uv-up-nc", req2, compile_=False)),
                env=uv_env,
                before=lambda i: (
                    fresh(work / "uv-up-nc"),
                    check(uv_fresh(work / "uv-up-nc", compile_=False), env=uv_env, log=log),
                ),
            )
            up_case = f"upgrade one package ({pin}), blob cache holding the first artifact"
            rows += [
                Row(
                    SECTION,
                    f"{up_case}, bytecode",
                    Stats.of(vp_up),
                    "venv-pull install (new generation)",
                    Stats.of(uv_up),
                    "uv pip install in place --compile-bytecode, warm uv cache",
                    UPGRADE,
                ),
                Row(
                    SECTION,
                    f"{up_case}, no bytecode",
                    Stats.of(vp_up_nc),
                    "venv-pull install --no-compile",
                    Stats.of(uv_up_nc),
                    "uv pip install in place, warm uv cache",
                ),
                Row(
                    SECTION,
                    f"{up_case}, no bytecode, health check replaced by `true`",
                    Stats.of(vp_up_nc_nocheck),
                    "venv-pull install --no-compile --check-command true",
                    note="extra figure: what venv-pull's default health check costs",
                ),
            ]

        else:
            step(
                f"no upgrade case: no known pin to change for {ctx.recipe.name}"
                " (use --upgrade-pin NAME==VERSION)"
            )

    step("venv-pull's own peak RSS: one cold install and one upgrade, as its console script runs")

    def own_rss(argv: list[str], before: Callable[[], object]) -> Run:
        before()
        out = work / "self-rss"
        run = run_timed([sys.executable, "-c", _SELF_RSS, out, *argv[1:]], env=ctx.env, log=log)
        return Run(wall=run.wall, rss_kib=int(out.read_text()), marks={})

    own = [own_rss(venv_pull(art, work / "rss", cold), lambda: (fresh(work / "rss"), fresh(cold)))]
    if art2:
        own.append(
            own_rss(
                venv_pull(art2, work / "rss", cold),
                lambda: check(venv_pull(art, work / "rss", cold), env=ctx.env, log=log),
            )
        )
    rows += [
        Row(
            SECTION,
            "peak RSS of venv-pull, every run of the install-tool uv artifact above",
            Stats.of(uv_runs),
            "venv-pull install (largest process of its tree)",
            target=PEAK_RSS,
            note="the tree holds uv, the bytecode workers and the health check's interpreter too",
        ),
        Row(
            SECTION,
            "peak RSS of venv-pull's own process (cold install, then upgrade)",
            Stats.of(own),
            "venv-pull install (its own process: getrusage RUSAGE_SELF)",
            target=PEAK_RSS,
        ),
    ]
    return rows
