"""Measured child processes: timing whole commands (wall time, CPU, peak RSS) and the environment
they run in. Only the ``venvship`` and ``venv-pull`` command lines are measured, never the library.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

if sys.version_info >= (3, 11):
    pass
else:  # the project depends on tomli there
    pass

TIME_BIN = "/usr/bin/time"  # GNU time: the peak RSS of a command, see run_timed
TRUSTED_RUNS = 5  # a median of fewer runs is reported but not trusted
TRUSTED_SPREAD = 0.5  # nor one whose runs spread wider than this fraction of it

Argv = Sequence["str | os.PathLike[str]"]


class BenchError(Exception):
    """A measured or preparing command failed; carries the tail of its output."""


# -- timing whole processes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One timed process: wall seconds, peak RSS (KiB) of its largest process, marked moments."""

    wall: float
    rss_kib: int
    marks: Mapping[str, float]


@dataclass(frozen=True)
class Stats:
    """Several runs of one command."""

    walls: tuple[float, ...]
    rss_kib: int

    @classmethod
    def value(cls, figure: float) -> Stats:
        """One figure that is no timed run (a size, a difference of medians)."""
        return cls(walls=(figure,), rss_kib=0)

    @classmethod
    def of(cls, runs: Sequence[Run], mark: str | None = None) -> Stats:
        walls = tuple(r.marks[mark] if mark else r.wall for r in runs)
        return cls(walls=walls, rss_kib=max(r.rss_kib for r in runs))

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def spread(self) -> float:
        """(max - min) / median: how far apart the runs were."""
        return (max(self.walls) - min(self.walls)) / self.median if self.median > 0 else 0.0

    @property
    def trust(self) -> str:
        """Why the median is not to be trusted, or "" when it is: at least TRUSTED_RUNS runs whose
        min and max lie within TRUSTED_SPREAD of it (a disk that stalls for seconds fails this)."""
        if len(self.walls) < TRUSTED_RUNS:
            return f"{len(self.walls)} run(s), fewer than {TRUSTED_RUNS}"
        if self.spread > TRUSTED_SPREAD:
            return f"runs spread over {self.spread:.0%} of the median"
        return ""

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": len(self.walls),
            "wall_s": {
                "min": round(min(self.walls), 4),
                "median": round(self.median, 4),
                "max": round(max(self.walls), 4),
                "all": [round(w, 4) for w in self.walls],
            },
            "peak_rss_mib": round(self.rss_kib / 1024, 1),
            "trusted": not self.trust,
            "distrust": self.trust or None,
        }


def run_timed(
    argv: Argv,
    *,
    env: Mapping[str, str],
    log: Path,
    cwd: Path | None = None,
    marks: Mapping[str, str] | None = None,
    require_marks: bool = True,
) -> Run:
    """Run ``argv`` to the end; return its wall time, the peak RSS of its largest process, and
    for each of ``marks`` (name → regex) the seconds until an output line first matched, or, for
    a regex with a group, the number that group matched (a figure the command reports itself).

    Output goes to ``log``. The peak RSS comes from GNU time when it is installed: Linux keeps a
    process's peak RSS across exec, so a child forked from this Python would count this
    process's own size; time's children start small. Without it, ``os.wait4``'s figure is used.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    patterns = {name: re.compile(rx) for name, rx in (marks or {}).items()}
    seen: dict[str, float] = {}
    rss_file = log.with_name(f".{log.name}.rss")
    timed = [TIME_BIN, "-f", "%M", "-o", str(rss_file)] if Path(TIME_BIN).exists() else []
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(str(a) for a in argv)}\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*timed, *(str(a) for a in argv)],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - start
            out.write(line)
            text = line.decode(errors="replace")
            for name, rx in patterns.items():
                found = rx.search(text) if name not in seen else None
                if found:
                    seen[name] = float(found.group(1)) if rx.groups else now
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        rss_file.unlink(missing_ok=True)
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise BenchError(
            f"exit {proc.returncode}: {shlex.join(str(a) for a in argv)}\n  (log {log})\n" + "\n".join(tail)
        )
    missing = [name for name in patterns if name not in seen]
    if missing and require_marks:
        raise BenchError(
            f"no output line matched {missing} in {shlex.join(str(a) for a in argv)} (log {log})"
        )
    rss = usage.ru_maxrss
    if timed:
        rss = int(rss_file.read_text().split()[-1])
        rss_file.unlink()
    return Run(wall=wall, rss_kib=rss, marks=seen)


def repeat(
    times: int,
    command: Callable[[int], Argv],
    *,
    env: Mapping[str, str],
    log: Path,
    before: Callable[[int], object] | None = None,
    after: Callable[[int], object] | None = None,
    marks: Mapping[str, str] | None = None,
) -> list[Run]:
    """Run ``command(i)`` ``times`` times; ``before``/``after`` (not timed) prepare and tidy each run."""
    runs = []
    for i in range(times):
        if before:
            before(i)
        runs.append(run_timed(command(i), env=env, log=log, marks=marks))
        if after:
            after(i)
    return runs


@dataclass(frozen=True)
class Series:
    """One command measured run after run: ``before`` (untimed) prepares each run."""

    command: Callable[[int], Argv]
    env: Mapping[str, str]
    before: Callable[[int], object] | None = None
    marks: Mapping[str, str] | None = None  # optional here: a run need not print every one


def interleaved(times: int, series: Sequence[Series], *, log: Path) -> list[list[Run]]:
    """Run each of ``series`` ``times`` times, run by run in turn (the first run of each, then the
    second of each, …), so that a slow spell of the machine falls on the tool and its baseline
    alike; return the runs of each series."""
    runs: list[list[Run]] = [[] for _ in series]
    for i in range(times):
        for one, out in zip(series, runs):
            if one.before:
                one.before(i)
            out.append(run_timed(one.command(i), env=one.env, log=log, marks=one.marks, require_marks=False))
    return runs


def sh(script: str) -> list[str]:
    """Return the argv that runs ``script`` with ``/bin/sh -ec`` (several steps, timed as one)."""
    return ["/bin/sh", "-ec", script]


def q(value: str | os.PathLike[str]) -> str:
    return shlex.quote(str(value))


def fresh(path: Path) -> Path:
    """Remove ``path`` (a folder) if it exists; return it."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    return path


# -- the environment of measured commands --------------------------------------------------------


def bench_env(**changes: str | None) -> dict[str, str]:
    """Return the environment for measured commands, with each change to this process's commented."""
    env = dict(os.environ)
    # This machine's pip.conf and PIP_FIND_LINKS point at local wheel folders; a user's would not.
    env["PIP_CONFIG_FILE"] = os.devnull
    env.pop("PIP_FIND_LINKS", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # Measured as a target host runs: with bytecode written, so the second start of a tool is warm.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("VIRTUAL_ENV", None)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def tool(name: str) -> str:
    """Return the path of a console script: beside this Python first (the nox session), else PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise BenchError(f"{name} not found beside {sys.executable} nor on PATH")
    return found


def check(argv: Argv, *, env: Mapping[str, str], log: Path, cwd: Path | None = None) -> str:
    """Run a preparing (untimed) command; return its output; raise BenchError on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(a) for a in argv], env=dict(env), cwd=cwd, capture_output=True, text=True, check=False
    )
    with log.open("a") as out:
        out.write(f"$ {shlex.join(str(a) for a in argv)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise BenchError(f"exit {proc.returncode}: {shlex.join(str(a) for a in argv)}\n{proc.stderr[-3000:]}")
    return proc.stdout
