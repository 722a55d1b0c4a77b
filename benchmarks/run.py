"""venvship's benchmarks: each figure next to a named baseline measured in the same run.

Usage: ``python benchmarks/run.py [build] [install] [registry] [verify] [fleet] [--recipe recipes/demo.toml]``
(``nox -s bench -- …`` passes the same arguments). Prints one table and writes it as JSON to
``build/bench/results.json``. The install section runs on a tmpfs and on disk (``--file-systems``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import bench_build
import bench_fleet
import bench_install
import bench_registry
import bench_verify
from _common import ROOT, Context, RecipeInfo
from _procs import TIME_BIN, BenchError, tool
from _rows import Row, format_rows, format_targets

SECTIONS = ("build", "install", "registry", "verify", "fleet")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)"
    )
    p.add_argument(
        "--recipe", type=Path, default=ROOT / "recipes" / "keystone.toml", help="(default: %(default)s)"
    )
    p.add_argument(
        "--runs",
        type=int,
        default=5,
        help="runs of each case (default: 5; a median of fewer is reported as not trusted)",
    )
    p.add_argument(
        "--file-systems",
        choices=("both", "tmpfs", "disk"),
        default="both",
        help="where the install section's cases run: a tmpfs (judged), the work folder's disk, or both"
        " (default)",
    )
    p.add_argument(
        "--tmpfs",
        type=Path,
        help="a folder on a tmpfs the install section makes its own folder in (default: as root, a"
        " tmpfs the bench mounts on build/bench/tmpfs and unmounts at the end; /dev/shm will not do:"
        " venv-pull refuses destinations in system trees)",
    )
    p.add_argument(
        "--work", type=Path, default=ROOT / "build" / "bench" / "work", help="(default: %(default)s)"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=ROOT / "build" / "bench" / "results.json",
        help="(default: %(default)s)",
    )
    p.add_argument("--check-command", help="venv-pull --check-command (default: venv-pull's health check)")
    p.add_argument("--zipapp", type=Path, help="venv-pull.pyz to time a bare host's no-op install with")
    p.add_argument("--upgrade-pin", metavar="NAME==VERSION", help="the pin changed for the upgrade case")
    p.add_argument(
        "--fleet-hosts", type=int, default=40, metavar="N", help="hosts of the fleet section (default 40)"
    )
    p.add_argument(
        "--fleet-path",
        choices=("registry", "http", "both"),
        default="both",
        help="the fleet section's path: registry caches, nginx caches of a layout over HTTP (default both)",
    )
    return p


def _host() -> dict[str, object]:
    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "missing"
        return out.splitlines()[0] if out else "?"

    return {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # Each tool says its own name: "venvship 0.1.0", "skopeo version 1.9.3".
        "venvship": version([tool("venvship"), "--version"]).removeprefix("venvship "),
        "skopeo": version(["skopeo", "--version"]).removeprefix("skopeo version "),
        "peak RSS by": "GNU time" if Path(TIME_BIN).exists() else "wait4 (counts the bench's own size)",
    }


def _fs_type(path: Path) -> str:
    """Return the type of the file system ``path`` is on, from /proc/mounts (longest mount point)."""
    best, kind = "", "?"
    real = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        point = fields[1].replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        _parser().error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    sections = [s for s in SECTIONS if s in args.sections] or list(SECTIONS)
    if args.runs < 1:
        _parser().error("--runs must be at least 1")
    try:
        recipe = RecipeInfo.load(args.recipe)
    except (OSError, KeyError, ValueError) as exc:
        print(f"benchmarks: {args.recipe}: cannot read the recipe: {exc}", file=sys.stderr)
        return 1
    ctx = Context(
        recipe=recipe,
        work=args.work.resolve(),
        runs=args.runs,
        check_command=args.check_command,
        zipapp=args.zipapp.resolve() if args.zipapp else None,
    )
    ctx.work.mkdir(parents=True, exist_ok=True)
    mounted: Path | None = None
    file_systems: dict[str, Path] = {}
    if args.file_systems != "disk":
        if args.tmpfs is None and os.geteuid() == 0:
            mounted = ctx.work.parent / "tmpfs"
            mounted.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "venvship-bench", mounted], check=True)
            args.tmpfs = mounted
        elif args.tmpfs is None:
            _parser().error("--tmpfs DIR is needed when not run as root (or pass --file-systems disk)")
        if _fs_type(args.tmpfs) != "tmpfs":
            _parser().error(f"--tmpfs {args.tmpfs}: not on a tmpfs (mount one, or pass --file-systems disk)")
        file_systems["tmpfs"] = Path(tempfile.mkdtemp(prefix="venvship-bench-", dir=args.tmpfs))
        file_systems["tmpfs"].chmod(0o755)  # the health check's user reads the venvs made here
    if args.file_systems in ("both", "disk"):
        file_systems["disk"] = ctx.work
    started = datetime.datetime.now(datetime.timezone.utc)
    host = _host()
    print(f"venvship benchmarks: {', '.join(sections)} with {args.recipe} ({args.runs} runs per case)")
    print("host: " + ", ".join(f"{k} {v}" for k, v in host.items()))
    print(f"work folder and command logs: {ctx.work}", flush=True)
    print(
        "install section on: "
        + ", ".join(f"{fs} {path} ({_fs_type(path)})" for fs, path in file_systems.items()),
        flush=True,
    )
    rows: list[Row] = []
    failed = ""
    t0 = time.monotonic()
    try:
        for section in sections:
            if section == "build":
                rows += bench_build.run(ctx)
            elif section == "install":
                rows += bench_install.run(ctx, upgrade_pin=args.upgrade_pin, file_systems=file_systems)
            elif section == "registry":
                rows += bench_registry.run(ctx)
            elif section == "fleet":
                paths = bench_fleet.PATHS if args.fleet_path == "both" else (args.fleet_path,)
                rows += bench_fleet.run(ctx, hosts=args.fleet_hosts, paths=paths)
            else:
                rows += bench_verify.run(ctx)
    except BenchError as exc:
        failed = str(exc)
    except KeyboardInterrupt:
        failed = "interrupted"
    finally:
        if "tmpfs" in file_systems:
            shutil.rmtree(file_systems["tmpfs"], ignore_errors=True)
        if mounted is not None:
            subprocess.run(["umount", mounted], check=False)
    print(format_rows(rows))
    print(format_targets(rows))
    print(f"\n({time.monotonic() - t0:.0f} s in all)")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(
            {
                "started": started.isoformat(timespec="seconds"),
                "recipe": str(args.recipe),
                "sections": sections,
                "runs": args.runs,
                "file_systems": {fs: str(path) for fs, path in file_systems.items()},
                "check_command": ctx.check_command,
                "host": host,
                "rows": [r.as_json() for r in rows],
                "error": failed or None,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"results: {args.results}")
    if failed:
        print(f"benchmarks: failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
