"""Registry (#4): push and pull through Debian's docker-registry on 127.0.0.1, against skopeo.

- push: ``venvship publish oci:DIR:NAME:TAG HOST/bench`` against ``skopeo copy --all`` of the
  same reference (index, manifest, config and every wheel blob); each run gets a new registry
  (empty storage), so both upload every blob.
- re-publish of unchanged content to the same repository (every blob already there).
- pull: venv-pull has no pull-only command, so ``venv-pull install HOST/bench/NAME:TAG`` runs
  with an empty blob cache and a new venv, and the pull is timed from its start to its log line
  ``pulled N blobs`` (reference resolution, platform selection, every blob fetched and verified
  into the cache); the whole install is reported too. Against ``skopeo copy --all docker://… oci:``
  into a new layout.
- no-op: ``venv-pull install`` from the registry when the venv is already that digest (one
  manifest request), by the installed script and, given ``--zipapp``, by
  ``/usr/bin/python3 venv-pull.pyz`` as on a bare host. PYTHONDONTWRITEBYTECODE is unset, as on
  a target host; the zipapp's figure shows a start that compiles every module it imports.
"""

from __future__ import annotations

from pathlib import Path

from _common import Context, section_header, step
from _procs import Stats, check, fresh, repeat, tool
from _rows import Row, Target
from _servers import Server, start_registry

SECTION = "registry"
THROUGHPUT = Target(min_ratio=0.9)
REPUBLISH = Target(max_seconds=1.0)
NOOP = Target(max_seconds=0.3)
SYSTEM_PYTHON = "/usr/bin/python3"


def _mib_s(size: int, seconds: float) -> str:
    return f"{size / 1048576 / seconds:.0f} MiB/s" if seconds > 0 else "-"


def run(ctx: Context) -> list[Row]:
    section_header(f"{SECTION}: push and pull {ctx.recipe.path.name} through docker-registry vs skopeo")
    work = fresh(ctx.work / "registry")
    work.mkdir(parents=True)
    art = ctx.artifact()
    log = ctx.log("registry")
    runs = ctx.runs
    venvship, vp, skopeo = tool("venvship"), tool("venv-pull"), "skopeo"
    name, tag = art.name, art.tag
    size = art.size
    rows: list[Row] = []

    # -- push into an empty registry each run ----------------------------------------------------
    current: dict[str, Server] = {}

    def new_registry(i: int, who: str) -> None:
        current["server"] = start_registry(work / f"reg-{who}-{i}")

    def drop_registry(i: int) -> None:
        server = current.pop("server")
        server.stop()
        fresh(server.log.parent)

    step(f"push to an empty registry: {runs} runs each")
    push = repeat(
        runs,
        lambda i: [venvship, "publish", art.ref, f"{current['server'].host}/bench", "--insecure"],
        env=ctx.env,
        log=log,
        before=lambda i: new_registry(i, "venvship"),
        after=drop_registry,
    )
    push_base = repeat(
        runs,
        lambda i: [
            skopeo,
            "copy",
            "--all",
            "--quiet",
            "--dest-tls-verify=false",
            art.ref,
            f"docker://{current['server'].host}/bench/{name}:{tag}",
        ],
        env=ctx.env,
        log=log,
        before=lambda i: new_registry(i, "skopeo"),
        after=drop_registry,
    )
    rows.append(
        Row(
            SECTION,
            f"push {name} ({size / 1048576:.1f} MiB, {len(art.packages) + len(art.tools)} wheels)",
            Stats.of(push),
            "venvship publish",
            Stats.of(push_base),
            "skopeo copy --all oci: -> docker://",
            THROUGHPUT,
            note=f"{_mib_s(size, Stats.of(push).median)} vs {_mib_s(size, Stats.of(push_base).median)}",
        )
    )

    with start_registry(work / "reg-main") as reg:
        repo = f"{reg.host}/bench"
        ref = f"{repo}/{name}:{tag}"
        check([venvship, "publish", art.ref, repo, "--insecure"], env=ctx.env, log=log)
        check(
            [
                skopeo,
                "copy",
                "--all",
                "--quiet",
                "--dest-tls-verify=false",
                art.ref,
                f"docker://{reg.host}/sk/{name}:{tag}",
            ],
            env=ctx.env,
            log=log,
        )
        step(f"re-publish unchanged content: {runs} runs each")
        again = repeat(
            runs, lambda i: [venvship, "publish", art.ref, repo, "--insecure"], env=ctx.env, log=log
        )
        again_base = repeat(
            runs,
            lambda i: [
                skopeo,
                "copy",
                "--all",
                "--quiet",
                "--dest-tls-verify=false",
                art.ref,
                f"docker://{reg.host}/sk/{name}:{tag}",
            ],
            env=ctx.env,
            log=log,
        )
        rows.append(
            Row(
                SECTION,
                f"re-publish unchanged {name}",
                Stats.of(again),
                "venvship publish (all blobs there)",
                Stats.of(again_base),
                "skopeo copy --all (all blobs there)",
                REPUBLISH,
            )
        )

        # -- pull ----------------------------------------------------------------------------------
        def install(root: Path, *extra: str, prog: list[str] | None = None) -> list[str]:
            return [
                *(prog or [vp]),
                "install",
                ref,
                "--insecure",
                "--dest",
                str(root / "venv"),
                "--cache",
                str(root / "cache"),
                "--facts-dir",
                str(root / "facts"),
                *ctx.install_args(),
                *extra,
            ]

        step(f"pull with venv-pull install (empty cache, new venv): {runs} runs")
        pulls = repeat(
            runs,
            lambda i: install(work / "pull"),
            env=ctx.env,
            log=log,
            before=lambda i: fresh(work / "pull"),
            marks={"pulled": r"pulled \d+ blobs"},
        )
        pull_base = repeat(
            runs,
            lambda i: [
                skopeo,
                "copy",
                "--all",
                "--quiet",
                "--src-tls-verify=false",
                f"docker://{ref}",
                f"oci:{work / 'skopeo-pull'}:{name}:{tag}",
            ],
            env=ctx.env,
            log=log,
            before=lambda i: fresh(work / "skopeo-pull"),
        )
        pulled = Stats.of(pulls, "pulled")
        rows += [
            Row(
                SECTION,
                f"pull {name} (empty cache)",
                pulled,
                "venv-pull install, until 'pulled N blobs'",
                Stats.of(pull_base),
                "skopeo copy --all docker:// -> oci:",
                THROUGHPUT,
                note=f"{_mib_s(size, pulled.median)} vs {_mib_s(size, Stats.of(pull_base).median)}; "
                "RSS is the whole install's",
            ),
            Row(
                SECTION,
                f"pull + install {name} (empty cache, new venv)",
                Stats.of(pulls),
                "venv-pull install",
            ),
        ]

        # -- no-op -----------------------------------------------------------------------------------
        step(f"no-op venv-pull install from the registry: {max(runs, 5)} runs each")
        noop_runs = max(runs, 5)
        # One untimed run first: the interpreter writes its bytecode once, as on a target host.
        check(install(work / "pull"), env=ctx.env, log=log)
        noop = repeat(noop_runs, lambda i: install(work / "pull"), env=ctx.env, log=log)
        rows.append(
            Row(
                SECTION,
                "no-op install from the registry (PYTHONDONTWRITEBYTECODE unset)",
                Stats.of(noop),
                "venv-pull (installed script)",
                target=NOOP,
            )
        )
        if ctx.zipapp is not None and Path(SYSTEM_PYTHON).exists():
            pyz = [SYSTEM_PYTHON, str(ctx.zipapp)]
            check(install(work / "pull", prog=pyz), env=ctx.env, log=log)
            noop_pyz = repeat(noop_runs, lambda i: install(work / "pull", prog=pyz), env=ctx.env, log=log)
            rows.append(
                Row(
                    SECTION,
                    "no-op install from the registry (bare host)",
                    Stats.of(noop_pyz),
                    f"{SYSTEM_PYTHON} {ctx.zipapp.name}",
                    target=NOOP,
                    note="the zipapp holds sources and zipimport writes no bytecode: every start compiles"
                    " venv-pull's modules, as where PYTHONDONTWRITEBYTECODE=1 kept them from being written",
                )
            )
    return rows
