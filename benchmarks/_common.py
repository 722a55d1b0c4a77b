"""What every benchmark section shares: the recipe and the artifact under test, and the run's
context (timed processes are in _procs.py, result rows in _rows.py, local servers in _servers.py).

Only the ``venvship`` and ``venv-pull`` command lines are used, never the library: the benchmarks
measure what a user runs.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from _procs import BenchError, bench_env, check, fresh, tool

if sys.version_info >= (3, 11):
    import tomllib
else:  # the project depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


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
