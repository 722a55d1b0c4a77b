"""What every benchmark section shares: timed child processes, result rows and their table,
local servers (docker-registry, a static HTTP server), the recipe and the artifact under test.

Only the ``venvship`` and ``venv-pull`` command lines are used, never the library: the benchmarks
measure what a user runs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # the project depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
REGISTRY_BIN = "/usr/bin/docker-registry"
TIME_BIN = "/usr/bin/time"  # GNU time: the peak RSS of a command, see run_timed
SERVER_DEADLINE = 20.0  # seconds a local server gets to answer before the bench gives up

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
        }


def run_timed(
    argv: Argv,
    *,
    env: Mapping[str, str],
    log: Path,
    cwd: Path | None = None,
    marks: Mapping[str, str] | None = None,
) -> Run:
    """Run ``argv`` to the end; return its wall time, the peak RSS of its largest process, and
    for each of ``marks`` (name → regex) the seconds until an output line first matched.

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
                if name not in seen and rx.search(text):
                    seen[name] = now
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
    if missing:
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


# -- result rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal from the issue, one of: venvship at least ``min_ratio`` times the baseline's speed; at
    most ``max_factor`` times the baseline's time; at most ``max_seconds`` of wall time; a peak RSS
    of at most ``max_mib``; at most ``max_added`` seconds more than the baseline (what a feature
    adds to the same command)."""

    min_ratio: float | None = None
    max_factor: float | None = None
    max_seconds: float | None = None
    max_mib: float | None = None
    max_added: float | None = None

    def text(self) -> str:
        if self.max_added is not None:
            return f"target: adds <= {self.max_added * 1000:g} ms"
        if self.min_ratio is not None:
            return f"target >= {self.min_ratio:g}x"
        if self.max_factor is not None:
            return f"target: at most {self.max_factor:g}x the baseline's"
        if self.max_mib is not None:
            return f"target: peak RSS <= {self.max_mib:g} MiB"
        return f"target <= {self.max_seconds:g} s"


@dataclass(frozen=True)
class Row:
    """One figure of venvship, next to its baseline measured in the same run."""

    section: str
    case: str
    ours: Stats
    ours_label: str = "venvship"
    base: Stats | None = None
    base_label: str = ""
    target: Target | None = None
    note: str = ""
    unit: str = "s"  # or "bytes": the figures are sizes, not wall times

    @property
    def ratio(self) -> float | None:
        """Baseline time / venvship time: above 1, venvship is faster (or moves more per second)."""
        if self.base is None or self.ours.median <= 0:
            return None
        return self.base.median / self.ours.median

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        if self.target.max_added is not None:
            assert self.base is not None
            return "PASS" if self.ours.median - self.base.median <= self.target.max_added else "MISS"
        if self.target.min_ratio is not None:
            return "PASS" if (self.ratio or 0) >= self.target.min_ratio else "MISS"
        if self.target.max_factor is not None:
            assert self.base is not None
            return "PASS" if self.ours.median <= self.target.max_factor * self.base.median else "MISS"
        if self.target.max_mib is not None:
            return "PASS" if self.ours.rss_kib <= self.target.max_mib * 1024 else "MISS"
        assert self.target.max_seconds is not None
        return "PASS" if self.ours.median <= self.target.max_seconds else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "case": self.case,
            "venvship": {"label": self.ours_label, **self.ours.as_json()},
            "baseline": {"label": self.base_label, **self.base.as_json()} if self.base else None,
            "ratio": round(self.ratio, 3) if self.ratio is not None else None,
            "target": self.target.text() if self.target else None,
            "verdict": self.verdict or None,
            "note": self.note or None,
        }


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.1f} s"


def _figure(stats: Stats, unit: str = "s") -> str:
    if unit == "bytes":
        return f"{stats.median / 1e6:.1f} MB"
    text = _seconds(stats.median)
    if len(stats.walls) > 1:
        text += f" [{min(stats.walls):.2f}-{max(stats.walls):.2f}]"
    return f"{text:<22} {stats.rss_kib / 1024:6.0f} MiB"


def format_rows(rows: Sequence[Row]) -> str:
    """Return the table: per row venvship's median wall [min-max] and peak RSS, the baseline's,
    the ratio, the target and PASS/MISS."""
    lines = []
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(
                f"\n== {section}  (median wall [min-max] over the runs, peak RSS of the largest process)"
            )
        lines.append(f"{row.case}")
        lines.append(f"    {row.ours_label:<70} {_figure(row.ours, row.unit)}")
        if row.base is not None:
            lines.append(f"    {row.base_label:<70} {_figure(row.base, row.unit)}")
        tail = []
        if row.ratio is not None:
            tail.append(f"ratio {row.ratio:.2f}x")
            if row.target is not None and row.target.max_factor is not None:
                what = "size" if row.unit == "bytes" else "time"
                tail.append(f"({what} {1 / row.ratio:.2f}x the baseline's)")
        if row.target is not None:
            tail.append(f"({row.target.text()})  {row.verdict}")
        if tail:
            lines.append("    " + "  ".join(tail))
        if row.note:
            lines.append(f"    note: {row.note}")
    return "\n".join(lines)


def format_targets(rows: Sequence[Row]) -> str:
    """Return one line per row with a target: PASS/MISS, the target, the section and case."""
    lines = [
        f"  {row.verdict:<4}  {row.target.text():<42} {row.section}: {row.case}"
        + (f" ({row.ours_label} vs {row.base_label})" if row.base is not None else f" ({row.ours_label})")
        for row in rows
        if row.target is not None
    ]
    if not lines:
        return ""
    missed = sum(1 for row in rows if row.verdict == "MISS")
    return f"\n== targets: {len(lines) - missed} PASS, {missed} MISS\n" + "\n".join(lines)


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


# -- local servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A local server process on 127.0.0.1, stopped by its PID."""

    host: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start(
    argv: Argv, *, log: Path, probe: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )
    deadline = time.monotonic() + SERVER_DEADLINE
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{argv[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return proc
        except urllib.error.HTTPError:
            return proc  # it answers: up
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            proc.wait(timeout=10)
            raise BenchError(
                f"{probe} did not answer within {SERVER_DEADLINE:g} s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)


def start_registry(workdir: Path, *, proxy: str | None = None, log_level: str = "warn") -> Server:
    """Start Debian's docker-registry on a free 127.0.0.1 port with storage and config in ``workdir``.

    ``proxy``: the URL of the registry it is a pull-through cache of; ``log_level="info"`` logs
    every answer (method, path, bytes written).
    """
    if not Path(REGISTRY_BIN).exists():
        raise BenchError(f"{REGISTRY_BIN} is missing: apt-get install docker-registry")
    fresh(workdir).mkdir(parents=True)
    port = free_port()
    config = {
        "version": "0.1",
        "log": {"level": log_level, "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if proxy:
        config["proxy"] = {"remoteurl": proxy}
    (workdir / "config.yml").write_text(json.dumps(config, indent=1))  # YAML reads JSON
    log = workdir / "registry.log"
    proc = _start(
        [REGISTRY_BIN, "serve", workdir / "config.yml"], log=log, probe=f"http://127.0.0.1:{port}/v2/"
    )
    return Server(host=f"127.0.0.1:{port}", proc=proc, log=log)


def start_http(folder: Path, log: Path) -> Server:
    """Serve ``folder`` with ``python -m http.server`` on a free 127.0.0.1 port."""
    port = free_port()
    argv: list[str | os.PathLike[str]] = [
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        folder,
        str(port),
    ]
    proc = _start(argv, log=log, probe=f"http://127.0.0.1:{port}/")
    return Server(host=f"127.0.0.1:{port}", proc=proc, log=log)


# -- the recipe and the artifact under test ------------------------------------------------------


def _first(python: str | list[str]) -> str:
    """A recipe's ``python`` may list several interpreters: the baselines use the first."""
    return python if isinstance(python, str) else python[0]


@dataclass(frozen=True)
class RecipeInfo:
    """What the baselines need from a recipe: its packages, constraints and Python."""

    path: Path
    name: str
    version: str
    python: str
    packages: tuple[str, ...]
    constraint_files: tuple[Path, ...]
    constraint_lines: tuple[str, ...]  # inline pins, global constraints first
    build_requirements: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> RecipeInfo:
        venv = tomllib.loads(path.read_text())["venv"]
        defaults: dict[str, Any] = {}
        named = venv.get("defaults")
        dfile = (path.parent / named) if named else path.parent / "defaults.toml"
        if dfile.is_file() and dfile.resolve() != path.resolve():
            defaults = tomllib.loads(dfile.read_text()).get("defaults", {})

        def merged(key: str) -> list[str]:
            return [*defaults.get(key, []), *venv.get(key, [])]

        files: list[Path] = []
        lines = merged("global-constraints")
        for folder, entries in (
            (dfile.parent, defaults.get("constraints", [])),
            (path.parent, venv.get("constraints", [])),
        ):
            for line in entries:
                opt = re.match(r"^(?:-c|--constraint)(?:\s+|=)(\S+)$", line.strip())
                if opt:
                    files.append((folder / opt.group(1)).resolve())
                else:
                    lines.append(line.strip())
        return cls(
            path=path.resolve(),
            name=venv["name"],
            version=venv["version"],
            python=_first(venv.get("python", defaults.get("python", "python3"))),
            packages=tuple(sorted(set(merged("default-packages") + merged("packages")))),
            constraint_files=tuple(files),
            constraint_lines=tuple(lines),
            build_requirements=tuple(merged("build-requirements") or ["pbr", "setuptools", "wheel"]),
        )

    def python_path(self, env: Mapping[str, str]) -> str:
        """Return the recipe's interpreter as the measured commands find it (PATH of ``env``)."""
        found = shutil.which(self.python, path=env.get("PATH"))
        if not found:
            raise BenchError(f"{self.path}: python {self.python!r} not found")
        return found

    def write_pip_inputs(self, folder: Path) -> tuple[Path, Path]:
        """Write ``requirements.txt`` and ``constraints.txt`` (files and inline pins) for pip."""
        folder.mkdir(parents=True, exist_ok=True)
        req = folder / "requirements.txt"
        req.write_text("".join(f"{p}\n" for p in self.packages))
        cons = folder / "constraints.txt"
        cons.write_text(
            "".join(f"-c {f}\n" for f in self.constraint_files)
            + "".join(f"{c}\n" for c in self.constraint_lines)
        )
        return req, cons


@dataclass(frozen=True)
class WheelFile:
    name: str
    version: str
    filename: str
    sha256: str
    size: int = 0


@dataclass(frozen=True)
class LayerFile:
    name: str
    digest: str
    size: int


@dataclass(frozen=True)
class Artifact:
    """A built artifact in an OCI layout, described by ``venvship inspect --json``."""

    layout: Path
    name: str
    tag: str
    packages: tuple[WheelFile, ...]
    tools: tuple[WheelFile, ...]
    size: int
    install_tool: str
    layers: tuple[LayerFile, ...] = ()

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.name}:{self.tag}"

    @classmethod
    def inspect(cls, layout: Path, name: str, tag: str, *, env: Mapping[str, str], log: Path) -> Artifact:
        out = check([tool("venvship"), "inspect", "--json", f"oci:{layout}:{name}:{tag}"], env=env, log=log)
        data = json.loads(out)
        platform = data["platforms"][0]

        def wheels(key: str) -> tuple[WheelFile, ...]:
            return tuple(
                WheelFile(
                    name=w["name"],
                    version=w["version"],
                    filename=w["filename"],
                    sha256=w["sha256"],
                    size=w["size"],
                )
                for w in platform[key]
            )

        return cls(
            layout=layout,
            name=name,
            tag=tag,
            packages=wheels("packages"),
            tools=wheels("tools"),
            size=int(platform.get("total_size", 0)),
            install_tool=str(platform.get("install_tool", "pip")),
            layers=tuple(
                LayerFile(name=d["name"], digest=d["digest"], size=d["size"])
                for d in platform.get("layers", [])
            ),
        )

    def blob(self, sha256: str) -> Path:
        return self.layout / "blobs" / "sha256" / sha256

    def wheelhouse(self, folder: Path) -> Path:
        """Return ``folder`` holding the artifact's wheels under their file names (symlinks to blobs)."""
        fresh(folder).mkdir(parents=True)
        for w in (*self.packages, *self.tools):
            (folder / w.filename).symlink_to(self.blob(w.sha256))
        return folder

    def hashed_requirements(self, path: Path) -> Path:
        """Write the lock as ``name==version --hash=sha256:…`` lines, what venv-pull hands pip."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in self.packages))
        return path

    def tool_wheel(self, name: str) -> Path:
        for w in self.tools:
            if w.name.lower() == name:
                return self.blob(w.sha256)
        raise BenchError(f"{self.ref}: no {name} wheel among the tools")


@dataclass
class Context:
    """One bench run: the recipe, the work folder, repetitions, and the artifacts built for it."""

    recipe: RecipeInfo
    work: Path
    runs: int
    check_command: str | None
    zipapp: Path | None
    env: dict[str, str] = field(default_factory=bench_env)
    _artifacts: dict[str, Artifact] = field(default_factory=dict)

    @property
    def cache(self) -> Path:
        """The venvship build cache shared by the sections (the build section empties it first)."""
        return self.work / "venvship-cache"

    def log(self, name: str) -> Path:
        return self.work / "logs" / f"{name}.log"

    def artifact(self, recipe: Path | None = None, *, label: str = "") -> Artifact:
        """Return the artifact of ``recipe`` (default: the bench's), building it (untimed) if needed
        into the layout ``artifact-oci`` (``artifact-oci-<label>``: a recipe's variant)."""
        path = (recipe or self.recipe.path).resolve()
        key = str(path)
        if key not in self._artifacts:
            info = RecipeInfo.load(path)
            layout = self.work / (f"artifact-oci-{label}" if label else "artifact-oci")
            env = dict(self.env, PIP_CACHE_DIR=str(self.work / "pip-cache-artifact"))
            print(f"   (preparing: venvship build {path.name} into {layout})", flush=True)
            check(
                [tool("venvship"), "build", path, "--output", f"oci:{layout}", "--cache-dir", self.cache],
                env=env,
                log=self.log("prepare-artifact"),
            )
            self._artifacts[key] = Artifact.inspect(
                layout, info.name, tag_of(info.version), env=self.env, log=self.log("prepare-artifact")
            )
        return self._artifacts[key]

    def install_args(self) -> list[str]:
        """venv-pull options every measured install shares.

        ``--no-distro-packages``: the baselines install no distro packages either, and as root
        venv-pull would run apt-get for the artifact's runtime packages on every changed install.
        """
        args = ["--no-distro-packages"]
        if self.check_command:
            args += ["--check-command", self.check_command]
        return args


def tag_of(version: str) -> str:
    """The artifact tag of a recipe version (PEP 440 local "+" becomes "_")."""
    return version.replace("+", "_")


def section_header(title: str) -> None:
    print(f"\n-- {title}", flush=True)


def step(text: str) -> None:
    print(f"   {text}", flush=True)
