"""What the install section measures with: copies of the recipe with another install tool or pin,
the pip and uv the artifacts carry (run by the baselines as venv-pull runs them), and the
commands every case shares (a venv-pull install, a uv install, a timed series of runs)."""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from _common import Artifact, Context, RecipeInfo
from _procs import Argv, BenchError, Run, Series, fresh, interleaved, q, repeat, sh

SECTION = "install"
NO_CHECK = ("--check-command", "true")  # extra rows: what venv-pull's default health check costs

# Lines venv-pull logs on the way, for where its time goes: the end of the pull, and the end of
# the health check with the check's own seconds.
VP_MARKS = {
    "pulled": r"^pulled \d+ blobs",
    "checked": r"^health check: ",
    "health": r"^health check: .* in (\d+\.\d+) s",
    "imports": r"^health check: .*\(imports (\d+\.\d+) s",
    "extensions": r"^health check: .*extension modules (\d+\.\d+) s\)",
}


def health_where(runs: list[Run]) -> str:
    """Return where the median health check of ``runs`` spent its time, from what it logged."""

    def median(name: str) -> float:
        values = sorted(r.marks.get(name, 0.0) for r in runs)
        return values[len(values) // 2]

    health, imports, extensions = median("health"), median("imports"), median("extensions")
    return (
        f"importing the recipe's packages {imports:.2f} s; loading extension modules {extensions:.2f} s;"
        f" starting the interpreter as the check's user, finding modules and the rest"
        f" {health - imports - extensions:.2f} s (of {health:.2f} s)"
    )


def where(runs: list[Run]) -> str:
    """Return where the median venv-pull run of ``runs`` spent its time, from its marks."""

    def median(name: str) -> float | None:
        values = sorted(r.marks[name] for r in runs if name in r.marks)
        return values[len(values) // 2] if values else None

    wall = sorted(r.wall for r in runs)[len(runs) // 2]
    pulled, checked, health = median("pulled"), median("checked"), median("health")
    parts = []
    if pulled is not None:
        parts.append(f"start, plan and pull {pulled:.2f} s")
    if checked is not None and health is not None:
        parts.append(f"unpack and link {checked - health - (pulled or 0):.2f} s")
        parts.append(f"health check {health:.2f} s")
        parts.append(f"switch, record, prune and exit {wall - checked:.2f} s")
    return "; ".join(parts) + f" (of {wall:.2f} s)" if parts else ""


@dataclass
class Bench:
    """The install section's run: its context, work folder and log, the wheelhouse the baselines
    install from, the uv they run, and every venv-pull run of the uv artifact (for peak RSS)."""

    ctx: Context
    work: Path
    log: Path
    vp: str  # the venv-pull command
    python: str
    house: Path
    uv: Path
    req: Path
    uv_env: dict[str, str]
    uv_label: str
    fs: str = "disk"  # the file system ``work`` is on
    uv_runs: list[Run] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return self.ctx.runs

    def venv_pull(self, a: Artifact, root: Path, cache: Path, *extra: str) -> list[str]:
        return [
            self.vp,
            "install",
            a.ref,
            "--dest",
            str(root / "venv"),
            "--cache",
            str(cache),
            "--facts-dir",
            str(root / "facts"),
            "-v",  # the health check's breakdown (where a MISS's time goes) is a debug line
            *self.ctx.install_args(),
            *extra,
        ]

    def timed(
        self,
        command: Callable[[int], Argv],
        *,
        env: dict[str, str] | None = None,
        before: Callable[[int], object] | None = None,
    ) -> list[Run]:
        return repeat(self.runs, command, env=env or self.ctx.env, log=self.log, before=before)

    def vp_series(
        self, a: Artifact, root: Path, cache: Path, *extra: str, before: Callable[[int], object] | None = None
    ) -> Series:
        """A series of venv-pull installs of ``a`` (marks: where its time goes)."""
        argv = self.venv_pull(a, root, cache, *extra)
        return Series(command=lambda i: argv, env=self.ctx.env, before=before, marks=VP_MARKS)

    def series(
        self,
        command: Callable[[int], Argv],
        *,
        env: dict[str, str] | None = None,
        before: Callable[[int], object] | None = None,
    ) -> Series:
        return Series(command=command, env=env or self.ctx.env, before=before)

    def interleaved(self, *series: Series) -> list[list[Run]]:
        """Run ``series`` run by run in turn (see _procs.interleaved); return each one's runs."""
        return interleaved(self.runs, series, log=self.log)

    def uv_install(self, venv: Path, requirements: Path, *, compile_: bool) -> str:
        return (
            f"{q(self.uv)} pip install -q --python {q(venv / 'bin' / 'python')} --offline --no-index"
            f" --find-links {q(self.house)} --require-hashes --no-deps"
            + (" --compile-bytecode" if compile_ else "")
            + f" -r {q(requirements)}"
        )

    def uv_fresh(self, venv: Path, *, compile_: bool) -> list[str]:
        return sh(
            f"{q(self.uv)} venv -q --python {q(self.python)} {q(venv)}\n"
            f"{self.uv_install(venv, self.req, compile_=compile_)}"
        )


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


def extract_uv(wheel: Path, dest: Path) -> Path:
    """Return the uv binary of ``wheel`` extracted to ``dest/uv`` (the baselines run the uv venv-pull runs)."""
    fresh(dest).mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        member = next((n for n in zf.namelist() if n.endswith(".data/scripts/uv")), None)
        if member is None:
            raise BenchError(f"{wheel}: no .data/scripts/uv in the uv wheel")
        (dest / "uv").write_bytes(zf.read(member))
    (dest / "uv").chmod(0o755)
    return dest / "uv"


def extract_pip(wheel: Path, dest: Path) -> Path:
    fresh(dest).mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest)
    return dest


def changed_wheels(art: Artifact, art2: Artifact) -> str:
    changed = {w.filename for w in art2.packages} - {w.filename for w in art.packages}
    return ", ".join(sorted(changed)) or "no wheel changed!"
