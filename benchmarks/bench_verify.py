"""Verify (#14): what a trust policy that requires signatures adds to ``venv-pull install``.

The bench's artifact is signed (a key made by openssl) and published to Debian's docker-registry on
127.0.0.1, which has no referrers API: signatures are found through the ``sha256-<hex>`` tag, the
slowest path (one 404 and then two tag, manifest and payload requests per digest).

- no-op: ``venv-pull install`` of the live digest with the policy against the same without it
  (the live generation records the keys that verified it: no request for signatures).
- cold install: what verification adds, measured where nothing else differs: ``--check`` on a
  new host (reference, platform selection, then verification of the index and the chosen
  manifest; nothing pulled or written), with the policy against without it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _common import Context, section_header, step
from _procs import Stats, check, fresh, repeat, tool
from _rows import Row, Target
from _servers import start_registry

SECTION = "verify"
ADDED = Target(max_added=0.05)


def _key(work: Path) -> tuple[Path, Path]:
    private, public = work / "release.pem", work / "release.pub"
    for argv in (
        ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(private)],
        ["openssl", "ec", "-in", str(private), "-pubout", "-out", str(public)],
    ):
        subprocess.run(argv, check=True, capture_output=True)
    return private, public


def run(ctx: Context) -> list[Row]:
    section_header(f"{SECTION}: venv-pull install with a policy that requires signatures")
    work = fresh(ctx.work / "verify")
    work.mkdir(parents=True)
    art = ctx.artifact()
    log = ctx.log("verify")
    private, public = _key(work)
    venvship, vp = tool("venvship"), tool("venv-pull")
    with start_registry(work / "reg") as reg:
        check(
            [venvship, "publish", art.ref, f"{reg.host}/bench", "--insecure", "--sign-key", private],
            env=ctx.env,
            log=log,
        )
        ref = f"{reg.host}/bench/{art.name}:{art.tag}"
        policy = work / "policy.toml"
        policy.write_text(
            f'[[scope]]\nmatch = "{reg.host}/bench"\nrequire-signature = true\nkeys = [{json.dumps(str(public))}]\n'
        )

        def install(root: Path, *extra: str) -> list[str]:
            return [
                vp,
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

        with_policy = ("--policy", str(policy))
        step(f"cold install, --check: {ctx.runs} runs with the policy and without")
        cold = repeat(
            ctx.runs, lambda i: install(work / "new", "--check", *with_policy), env=ctx.env, log=log
        )
        cold_base = repeat(ctx.runs, lambda i: install(work / "new", "--check"), env=ctx.env, log=log)
        step(f"no-op: {ctx.runs} runs with the policy and without")
        check(install(work / "host", *with_policy), env=ctx.env, log=log)
        noop = repeat(ctx.runs, lambda i: install(work / "host", *with_policy), env=ctx.env, log=log)
        noop_base = repeat(ctx.runs, lambda i: install(work / "host"), env=ctx.env, log=log)
    return [
        Row(
            SECTION,
            "no-op rerun, signatures required",
            Stats.of(noop),
            "venv-pull install --policy (unchanged)",
            Stats.of(noop_base),
            "venv-pull install (unchanged), no policy",
            ADDED,
        ),
        Row(
            SECTION,
            "cold install: select + verify (--check)",
            Stats.of(cold),
            "venv-pull install --check --policy",
            Stats.of(cold_base),
            "venv-pull install --check, no policy",
            ADDED,
            note="the index and the chosen manifest verified through the sha256-<hex> tag, 2 openssl runs",
        ),
    ]
