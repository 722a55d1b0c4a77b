"""Install (#3): ``venv-pull install`` from an OCI layout against pip and uv installing the same
wheels by hand.

venv-pull compiles bytecode by default, so its default runs meet baselines that compile too
(pip's default; uv with ``--compile-bytecode``); ``--no-compile`` meets uv without it.

- (a) ``python -m venv --without-pip`` + the artifact's own pip wheel installing with
  ``--no-index --require-hashes --no-deps`` from an HTTP find-links server (``python -m
  http.server`` on 127.0.0.1) serving the wheelhouse: the original role's repo-server way.
- (b) ``uv venv`` + ``uv pip install --offline --no-index --find-links WHEELHOUSE``, with an
  empty and with a warm uv cache.
- (c) upgrade: a second artifact with one pin changed, installed over the first: venv-pull makes
  a new generation; pip and uv change the venv in place.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from _common import (
    Artifact,
    BenchError,
    Context,
    RecipeInfo,
    Row,
    Stats,
    check,
    fresh,
    q,
    repeat,
    section_header,
    sh,
    start_http,
    step,
    tool,
)

SECTION = "install"

# The pin changed for the upgrade case, per recipe name (--upgrade-pin picks another).
UPGRADE_PINS = {"keystone": "PyMySQL==1.1.2", "demo": "six==1.16.0"}


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def upgrade_recipe(ctx: Context, pin: str) -> Path:
    """Copy the recipe's folder into the work folder with ``pin`` changed and the version
    suffixed ``-upgrade``; return the copied recipe."""
    name, _, version = pin.partition("==")
    if not version:
        raise BenchError(f"--upgrade-pin {pin!r}: write NAME==VERSION")
    src = ctx.recipe.path.parent
    dest = fresh(ctx.work / "upgrade-recipes")
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.py*", "__pycache__"))
    recipe = dest / ctx.recipe.path.name
    text = recipe.read_text()
    text, n = re.subn(r'(?m)^(version\s*=\s*")([^"]+)(")', r"\g<1>\g<2>-upgrade\g<3>", text, count=1)
    if n != 1:
        raise BenchError(f"{ctx.recipe.path}: no version line to change")
    recipe.write_text(text)
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
                return recipe
    raise BenchError(f"--upgrade-pin {pin}: {name} is pinned in none of the recipe's constraint files")


def run(ctx: Context, *, upgrade_pin: str | None) -> list[Row]:
    section_header(f"{SECTION}: venv-pull install {ctx.recipe.path.name} vs pip and uv")
    work = fresh(ctx.work / "install")
    work.mkdir(parents=True)
    art = ctx.artifact()
    pin = upgrade_pin or UPGRADE_PINS.get(ctx.recipe.name)
    art2: Artifact | None = None
    if pin:
        art2 = ctx.artifact(upgrade_recipe(ctx, pin))
        changed = {w.filename for w in art2.packages} - {w.filename for w in art.packages}
        step(f"upgrade artifact {art2.tag}: {pin} ({', '.join(sorted(changed)) or 'no wheel changed!'})")
    python = ctx.recipe.python_path(ctx.env)
    # One wheelhouse with both artifacts' wheels: the hashes in each requirements file pick.
    house = art.wheelhouse(work / "wheelhouse")
    if art2:
        for w in (*art2.packages, *art2.tools):
            if not (house / w.filename).exists():
                (house / w.filename).symlink_to(art2.blob(w.sha256))
    req = art.hashed_requirements(work / "requirements.txt")
    req2 = art2.hashed_requirements(work / "requirements-upgrade.txt") if art2 else None
    pip_wheel = art.tool_wheel("pip")
    pip_version = next(w.version for w in art.tools if w.name.lower() == "pip")
    uv = tool("uv")
    uv_version = check([uv, "--version"], env=ctx.env, log=ctx.log("install")).split()[1]
    log = ctx.log("install")
    vp = tool("venv-pull")
    runs = ctx.runs

    def venv_pull(ref: str, root: Path, cache: Path, *extra: str) -> list[str]:
        return [
            vp,
            "install",
            ref,
            "--dest",
            str(root / "venv"),
            "--cache",
            str(cache),
            "--facts-dir",
            str(root / "facts"),
            *ctx.install_args(),
            *extra,
        ]

    def pip_install(venv: Path, url: str, requirements: Path) -> str:
        # pip runs from its wheel as venv-pull runs it; no --no-compile: pip's default compiles.
        return (
            f"{q(venv / 'bin' / 'python')} {q(pip_wheel)}/pip install -q --no-input --no-index"
            f" --find-links {q(url)} --require-hashes --no-deps -r {q(requirements)}"
        )

    def pip_fresh(venv: Path, url: str) -> list[str]:
        return sh(f"{q(python)} -m venv --without-pip {q(venv)}\n{pip_install(venv, url, req)}")

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

    rows: list[Row] = []
    with start_http(house, work / "http.log") as http:
        url = f"http://{http.host}/"
        pip_label = f"venv + pip {pip_version} via HTTP find-links"
        uv_label = f"uv {uv_version} venv + pip install"

        step(f"venv-pull, empty blob cache, new venv: {runs} runs")
        vp_cold = repeat(
            runs,
            lambda i: venv_pull(art.ref, work / "vp-cold", work / "vp-cold-cache"),
            env=ctx.env,
            log=log,
            before=lambda i: (fresh(work / "vp-cold"), fresh(work / "vp-cold-cache")),
        )
        step(f"baseline {pip_label}, empty pip cache: {runs} runs")
        pip_env = dict(ctx.env, PIP_CACHE_DIR=str(work / "pip-cache"))
        pip_cold = repeat(
            runs,
            lambda i: pip_fresh(work / "pip-venv", url),
            env=pip_env,
            log=log,
            before=lambda i: (fresh(work / "pip-venv"), fresh(work / "pip-cache")),
        )
        step(f"baseline {uv_label} --compile-bytecode, empty uv cache: {runs} runs")
        uv_env = dict(ctx.env, UV_CACHE_DIR=str(work / "uv-cache"), UV_NO_CONFIG="1")
        uv_cold = repeat(
            runs,
            lambda i: uv_fresh(work / "uv-venv", compile_=True),
            env=uv_env,
            log=log,
            before=lambda i: (fresh(work / "uv-venv"), fresh(work / "uv-cache")),
        )
        rows += [
            Row(
                SECTION,
                "cold: empty cache, new venv",
                Stats.of(vp_cold),
                "venv-pull install (compiles)",
                Stats.of(pip_cold),
                f"{pip_label} (compiles)",
            ),
            Row(
                SECTION,
                "cold: empty cache, new venv",
                Stats.of(vp_cold),
                "venv-pull install (compiles)",
                Stats.of(uv_cold),
                f"{uv_label} --compile-bytecode",
            ),
        ]

        # Warm: the blob cache (pip's HTTP cache, uv's cache) holds everything; the venv is new.
        step(f"venv-pull, warm blob cache, new venv: {runs} runs (and --no-compile)")
        warm_cache = work / "vp-cold-cache"  # left full by the last cold run
        vp_warm = repeat(
            runs,
            lambda i: venv_pull(art.ref, work / "vp-warm", warm_cache),
            env=ctx.env,
            log=log,
            before=lambda i: fresh(work / "vp-warm"),
        )
        vp_warm_nc = repeat(
            runs,
            lambda i: venv_pull(art.ref, work / "vp-warm-nc", warm_cache, "--no-compile"),
            env=ctx.env,
            log=log,
            before=lambda i: fresh(work / "vp-warm-nc"),
        )
        step("baselines with warm caches")
        pip_warm = repeat(
            runs,
            lambda i: pip_fresh(work / "pip-venv", url),
            env=pip_env,
            log=log,
            before=lambda i: fresh(work / "pip-venv"),
        )
        uv_warm = repeat(
            runs,
            lambda i: uv_fresh(work / "uv-venv", compile_=True),
            env=uv_env,
            log=log,
            before=lambda i: fresh(work / "uv-venv"),
        )
        uv_warm_nc = repeat(
            runs,
            lambda i: uv_fresh(work / "uv-venv-nc", compile_=False),
            env=uv_env,
            log=log,
            before=lambda i: fresh(work / "uv-venv-nc"),
        )
        rows += [
            Row(
                SECTION,
                "warm cache, new venv",
                Stats.of(vp_warm),
                "venv-pull install (compiles)",
                Stats.of(pip_warm),
                f"{pip_label} (warm pip cache)",
            ),
            Row(
                SECTION,
                "warm cache, new venv",
                Stats.of(vp_warm),
                "venv-pull install (compiles)",
                Stats.of(uv_warm),
                f"{uv_label} --compile-bytecode (warm)",
            ),
            Row(
                SECTION,
                "warm cache, new venv, no bytecode",
                Stats.of(vp_warm_nc),
                "venv-pull install --no-compile",
                Stats.of(uv_warm_nc),
                f"{uv_label} (warm, no compile)",
            ),
        ]

        # No-op: the venv is already what was asked for.
        step(f"no-op reruns: {runs} runs each")
        vp_noop = repeat(
            runs, lambda i: venv_pull(art.ref, work / "vp-warm", warm_cache), env=ctx.env, log=log
        )
        pip_noop = repeat(runs, lambda i: sh(pip_install(work / "pip-venv", url, req)), env=pip_env, log=log)
        uv_noop = repeat(
            runs, lambda i: sh(uv_install(work / "uv-venv", req, compile_=True)), env=uv_env, log=log
        )
        rows += [
            Row(
                SECTION,
                "no-op rerun",
                Stats.of(vp_noop),
                "venv-pull install (unchanged)",
                Stats.of(pip_noop),
                "pip install (all already satisfied)",
            ),
            Row(
                SECTION,
                "no-op rerun",
                Stats.of(vp_noop),
                "venv-pull install (unchanged)",
                Stats.of(uv_noop),
                "uv pip install (all already satisfied)",
            ),
        ]

        if art2 and req2:
            # Upgrade: each run starts from the first artifact installed (not timed).
            step(f"upgrade {pin}: {runs} runs each (each run reinstalls the first version first)")
            vp_up = repeat(
                runs,
                lambda i: venv_pull(art2.ref, work / "vp-up", warm_cache),
                env=ctx.env,
                log=log,
                before=lambda i: (
                    fresh(work / "vp-up"),
                    check(venv_pull(art.ref, work / "vp-up", warm_cache), env=ctx.env, log=log),
                ),
            )
            pip_up = repeat(
                runs,
                lambda i: sh(pip_install(work / "pip-up", url, req2)),
                env=pip_env,
                log=log,
                before=lambda i: (
                    fresh(work / "pip-up"),
                    check(pip_fresh(work / "pip-up", url), env=pip_env, log=log),
                ),
            )
            uv_up = repeat(
                runs,
                lambda i: sh(uv_install(work / "uv-up", req2, compile_=True)),
                env=uv_env,
                log=log,
                before=lambda i: (
                    fresh(work / "uv-up"),
                    check(uv_fresh(work / "uv-up", compile_=True), env=uv_env, log=log),
                ),
            )
            rows += [
                Row(
                    SECTION,
                    f"upgrade one package ({pin})",
                    Stats.of(vp_up),
                    "venv-pull install (new generation)",
                    Stats.of(pip_up),
                    "pip install in place (compiles)",
                ),
                Row(
                    SECTION,
                    f"upgrade one package ({pin})",
                    Stats.of(vp_up),
                    "venv-pull install (new generation)",
                    Stats.of(uv_up),
                    "uv pip install in place --compile-bytecode",
                ),
            ]
        else:
            step(
                f"no upgrade case: no known pin to change for {ctx.recipe.name}"
                " (use --upgrade-pin NAME==VERSION)"
            )
    return rows
