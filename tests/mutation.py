"""Mutation testing of the modules that hold venv-pull's rules (``nox -s mutation``).

Each module is mutated with cosmic-ray, one mutant at a time, in a copy of the checkout (a run
stopped half-way never leaves a mutant in the working tree), and the tests that guard it run
against each mutant. Survivors are printed with their diff: each one is a rule no test guards, or
a mutant that changes nothing. ``--sample N`` runs N mutants per module drawn with ``--seed``;
``--budget SECONDS`` stops a module's run after that long (what ran is still reported).

Exit status: 1 when a run itself breaks (the tests fail on the unmutated code, or a worker
errors running them), or when a survivor is listed in :data:`KILLED` (a mutant a test was written
to kill); plain survivors, and mutants cosmic-ray fails to make, are reported, not failed on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Module -> the tests that guard its rules (fast ones first: every mutant runs them all, -x).
TARGETS: dict[str, list[str]] = {
    "src/venvship/host/trust.py": ["tests/unit/test_trust.py"],
    "src/venvship/install/facts.py": [
        "tests/unit/test_facts.py",
        "tests/integration/install/test_install.py::test_facts_are_written_only_when_they_change",
    ],
    "src/venvship/install/generations.py": [
        "tests/integration/install/test_generations.py",
        "tests/integration/install/test_install.py",
    ],
    "src/venvship/install/store.py": [
        "tests/integration/install/test_upgrade.py",
        "tests/integration/install/test_store_races.py",
        "tests/integration/install/test_layers.py",
    ],
    "src/venvship/install/unpack.py": [
        "tests/unit/test_layer_members.py",
        "tests/unit/test_unpack.py",
        "tests/integration/install/test_layers.py",
    ],
    "src/venvship/verify/signature.py": ["tests/integration/install/test_signatures.py"],
    "src/venvship/verify/policy.py": ["tests/integration/install/test_signatures.py"],
    "src/venvship/artifact/layerformat.py": ["tests/integration/install/test_layers.py"],
}
# The quick sample CI runs (unit-test-guarded modules only).
CI_MODULES = ["src/venvship/host/trust.py", "src/venvship/install/facts.py"]
# Mutants a test was written to kill, as (module, operator, occurrence): one of these surviving
# fails the run. Occurrence numbers are cosmic-ray's, stable while the module is unchanged.
KILLED: set[tuple[str, str, int]] = set()


def _copy_checkout(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _config(work: Path, module: str, tests: list[str], timeout: float) -> Path:
    cfg = work / "cosmic-ray.toml"
    command = " ".join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests])
    cfg.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(module)}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    return cfg


def _sample(db: Path, keep: int, seed: int) -> int:
    """Mark all but ``keep`` random pending mutants as skipped; return how many are left to run."""
    from cosmic_ray.work_db import WorkDB, use_db  # type: ignore[import-not-found]
    from cosmic_ray.work_item import WorkerOutcome, WorkResult  # type: ignore[import-not-found]

    with use_db(str(db), WorkDB.Mode.open) as work_db:
        items = sorted(work_db.pending_work_items, key=lambda w: w.job_id)
        drop = random.Random(seed).sample(items, max(0, len(items) - keep))
        for item in drop:
            work_db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        return min(keep, len(items))


def _descendants(pid: int) -> set[int]:
    """Return the pids of every live descendant of ``pid`` (from /proc, whatever their session)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone while we looked
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and all it started, and reap ``proc``.

    cosmic-ray runs each mutant's tests in a session of their own, and those run venv-pull, which
    puts its children in groups of their own: no one process group holds them all. So the tree is
    stopped first (a stopped process starts nothing), found again until nothing new shows, then killed.
    """
    stopped: set[int] = set()
    todo = {proc.pid}
    while todo:
        for pid in todo:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= todo
        todo = _descendants(proc.pid) - stopped
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def _unmade(output: str) -> bool:
    """Whether a worker's traceback ``output`` comes from cosmic-ray making the mutant (not from a test)."""
    return "in apply_mutation" in output


def _run_module(module: str, args: argparse.Namespace, copy: Path) -> tuple[list[str], list[str]]:
    """Return (survivor reports, breakages) of mutating ``module``."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    tests = TARGETS[module]
    work = copy / ".mutation" / Path(module).stem
    work.mkdir(parents=True)
    cfg = _config(work, module, tests, args.timeout)
    db = work / "session.sqlite"
    baseline = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=copy, check=False
    )
    if baseline.returncode != 0:
        return [], [f"{module}: its tests fail on the unmutated code"]
    subprocess.run(["cosmic-ray", "init", str(cfg), str(db)], check=True, cwd=copy)
    todo = _sample(db, args.sample, args.seed) if args.sample else None
    print(
        f"mutation: {module}: {'all' if todo is None else todo} mutants against {' '.join(tests)}", flush=True
    )
    # cosmic-ray writes each mutant into the copy and restores the file after its tests: stopped
    # half-way, it leaves the mutant there and its test run goes on, and the next module's tests
    # would run against it. So all it started goes at the budget's end, and the module is copied back.
    exe = subprocess.Popen(["cosmic-ray", "exec", str(cfg), str(db)], cwd=copy)
    try:
        exe.wait(timeout=args.budget)
    except subprocess.TimeoutExpired:
        print(f"mutation: {module}: budget of {args.budget} s spent; reporting what ran", flush=True)
    finally:
        _kill_tree(exe)
        shutil.copy2(ROOT / module, copy / module)
    survivors, broken = [], []
    counts: dict[str, int] = {}
    with use_db(str(db), WorkDB.Mode.open) as work_db:
        for item, result in work_db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            key = str(result.test_outcome or result.worker_outcome)
            counts[key] = counts.get(key, 0) + 1
            spec = item.mutations[0]
            where = f"{module}:{spec.start_pos[0]} {spec.operator_name} #{spec.occurrence}"
            if result.worker_outcome == WorkerOutcome.EXCEPTION and _unmade(result.output or ""):
                # cosmic-ray's own bug on some code (ExceptionReplacer on ``except (A, m.B)``): no
                # mutant was written and no test ran. Said, not failed on: the run is sound.
                print(f"mutation: {where}: cosmic-ray could not make this mutant; left out", flush=True)
            elif result.worker_outcome == WorkerOutcome.EXCEPTION:
                broken.append(f"{where}: the worker failed\n{result.output}")
            elif result.test_outcome == TestOutcome.SURVIVED:
                survivors.append(f"SURVIVED {where}\n{result.diff}")
                if (module, spec.operator_name, spec.occurrence) in KILLED:
                    broken.append(f"{where}: a mutant a test was written to kill survived")
    print(f"mutation: {module}: {json.dumps(counts, sort_keys=True)}", flush=True)
    return survivors, broken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument("--ci", action="store_true", help=f"CI's bounded run: {', '.join(CI_MODULES)}")
    parser.add_argument("--sample", type=int, default=0, help="mutants per module (default: all)")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--budget", type=float, default=None, help="seconds per module")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    args = parser.parse_args(argv)
    modules = (
        CI_MODULES if args.ci else [m if m.startswith("src/") else f"src/venvship/{m}" for m in args.modules]
    )
    modules = modules or list(TARGETS)
    unknown = [m for m in modules if m not in TARGETS]
    if unknown:
        parser.error(f"no tests are listed for {', '.join(unknown)} (tests/mutation.py TARGETS)")
    all_survivors, all_broken = [], []
    with tempfile.TemporaryDirectory(prefix="venvship-mutation-") as tmp:
        copy = Path(tmp)
        _copy_checkout(copy)
        # The copy's src, not the checkout's (the session installs the checkout in editable mode).
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(copy / "src"), os.environ.get("PYTHONPATH")])
        )
        # The runs below turn the cache plugin off (each mutant would write one), so a caller's
        # `-o cache_dir=` (CI's) would name an unknown option, an error under filterwarnings.
        os.environ.pop("PYTEST_ADDOPTS", None)
        for module in modules:
            survivors, broken = _run_module(module, args, copy)
            all_survivors += survivors
            all_broken += broken
    for line in all_survivors:
        print(line)
    for line in all_broken:
        print(f"mutation: error: {line}", file=sys.stderr)
    print(f"mutation: {len(all_survivors)} survivors, {len(all_broken)} errors")
    return 1 if all_broken else 0


if __name__ == "__main__":
    sys.exit(main())
