"""docs/tutorial.md runs as written: every ``$`` command of its console blocks runs for real, in
order, and prints what the page shows, digests, ids, times and paths aside.

The tutorial builds the demo recipe from PyPI (and compiles netifaces), so the whole run happens
only when asked for: ``VENVSHIP_TEST_PYPI=1``. The parsing and comparing below is tested always.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
FOLDER = "/tmp/venvship-tutorial"  # where the tutorial works; the test's own folder stands in
CACHE = "~/.cache/venvship"  # the build cache the tutorial's output names
ELIDED = "…"  # a line of the page that stands for any number of lines of output

# Progress lines depend on the machine's speed: a step that lasts, and how long it took.
_PROGRESS = re.compile(r"\(\d+s\)$|: (?:\d+/\d+ )?done in \d+\.\ds$")
_NORMAL = [
    (re.compile(r"sha256:[0-9a-f]{12,64}"), "sha256:<digest>"),
    (re.compile(r"\b[0-9a-f]{12,16}\b"), "<id>"),
    (re.compile(r"\b\d{8}T\d{6}\b"), "<time>"),
]
# The build's warning that `python3` on this PATH is not the system's: a machine's fact (the test
# runs venvship on the session's interpreter), not the page's; a venv made from the system's
# python3, as the tutorial makes it, prints none.
_OTHER_PYTHON = re.compile(
    r"^\S+\.toml: venv\.python: python3 is .* but targets take the one on the system PATH"
)


@dataclass(frozen=True)
class Step:
    """One ``$`` command of the page, where it is, and the output shown under it."""

    line: int
    command: str
    output: tuple[str, ...]


def steps(text: str) -> list[Step]:
    """Return the commands of the ``console`` blocks of a page, in order, with their output."""
    out: list[Step] = []
    in_block = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_block = line.strip() == "```console"
        elif in_block and line.startswith("$ "):
            out.append(Step(line=n, command=line[2:], output=()))
        elif in_block and out:
            last = out[-1]
            out[-1] = Step(line=last.line, command=last.command, output=(*last.output, line))
    return out


def normalise(line: str, paths: dict[str, str]) -> str:
    """Return ``line`` with this run's folders named as the page names them, and digests, ids
    and times replaced by placeholders."""
    for real, shown in paths.items():
        line = line.replace(real, shown)
    for pattern, placeholder in _NORMAL:
        line = pattern.sub(placeholder, line)
    return line.rstrip()


def differences(shown: list[str], printed: list[str]) -> list[str]:
    """Return the lines where ``printed`` differs from ``shown`` (an ``…`` line matches any run)."""
    if ELIDED not in shown:
        if shown == printed:
            return []
        return [f"  page: {a!r}\n   run: {b!r}" for a, b in zip(shown, printed) if a != b] or [
            f"  page has {len(shown)} lines, the run printed {len(printed)}: {printed!r}"
        ]
    cut = shown.index(ELIDED)
    head, tail = shown[:cut], shown[cut + 1 :]
    if printed[: len(head)] == head and (not tail or printed[-len(tail) :] == tail):
        return [] if len(printed) >= len(head) + len(tail) else ["  the run printed fewer lines"]
    return [f"  page: {shown!r}\n   run: {printed!r}"]


def run_page(page: Path, *, folder: Path, cache: Path, bin_dir: Path) -> list[str]:
    """Run every ``$`` command of ``page`` and return how the output differs from the page's."""
    paths = {str(folder): FOLDER, str(cache): CACHE}
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT / "src"),
        "VENVSHIP_CACHE": str(cache),
    }
    env.pop("VENVSHIP_TEST_PAUSE_AT", None)
    cwd = ROOT  # the tutorial starts in the clone's top folder
    problems = []
    for step in steps(page.read_text(encoding="utf-8")):
        command = step.command.replace(FOLDER, str(folder))
        if command.startswith("cd "):
            cwd = (cwd / command[3:].strip()).resolve()
            continue
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=1800,
            check=False,
        )
        printed = [
            normalise(x, paths)
            for x in proc.stdout.rstrip("\n").splitlines()
            if not _PROGRESS.search(x) and not _OTHER_PYTHON.search(x)
        ]
        shown = [normalise(x, paths) for x in step.output]  # a block cannot end in a blank line
        found = differences(shown, printed)
        if found:
            problems.append(f"{page.name}:{step.line}: $ {step.command}\n" + "\n".join(found))
    return problems


def _commands(bin_dir: Path) -> Path:
    """Return a folder with ``venvship`` and ``venv-pull`` running this checkout's code."""
    bin_dir.mkdir()
    for name, module in (("venvship", "venvship_main"), ("venv-pull", "venv_pull_main")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {sys.executable} -m venvship.cli.{module} "$@"\n')
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.mark.may_skip("an opt-in run against PyPI")
@pytest.mark.skipif(
    os.environ.get("VENVSHIP_TEST_PYPI") != "1",
    reason="runs the tutorial for real against PyPI: set VENVSHIP_TEST_PYPI=1 to run it",
)
def test_the_tutorial_prints_what_it_shows(tmp_path: Path) -> None:
    folder = tmp_path / "venvship-tutorial"
    problems = run_page(
        TUTORIAL, folder=folder, cache=tmp_path / "cache", bin_dir=_commands(tmp_path / "bin")
    )
    assert problems == [], "\n".join(problems)


# -- the harness itself, always ------------------------------------------------------------------


def test_the_harness_reads_and_compares_a_page(tmp_path: Path) -> None:
    text = (
        "Text.\n\n```console\n$ mkdir /tmp/venvship-tutorial/x\n$ cd /tmp/venvship-tutorial/x\n"
        "$ echo sha256:0123456789abcdef0123 && pwd\nsha256:aaaaaaaaaaaaaaaaaaaa\n/tmp/venvship-tutorial/x\n"
        "$ printf 'one\\ntwo\\nthree\\n'\none\n…\nthree\n```\n\n```sh\n$ not run\n```\n"
        "```console\n$ printf 'slow: 1/3 x (4s)\\nright\\n'\nwrong\n```\n"
    )
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    assert [s.command for s in steps(text)] == [
        "mkdir /tmp/venvship-tutorial/x",
        "cd /tmp/venvship-tutorial/x",
        "echo sha256:0123456789abcdef0123 && pwd",
        "printf 'one\\ntwo\\nthree\\n'",
        "printf 'slow: 1/3 x (4s)\\nright\\n'",
    ]
    (tmp_path / "t").mkdir()
    problems = run_page(
        page, folder=tmp_path / "t", cache=tmp_path / "c", bin_dir=_commands(tmp_path / "bin")
    )
    slow = steps(text)[-1]
    assert problems == [f"page.md:{slow.line}: $ {slow.command}\n  page: 'wrong'\n   run: 'right'"]


def test_normalise_keeps_what_matters() -> None:
    paths = {"/tmp/xyz/venvship-tutorial": FOLDER}
    line = "/tmp/xyz/venvship-tutorial/demo: changed (sha256:d525d573638d8b43e0c8, 8 packages) d525d573638d-1"
    assert (
        normalise(line, paths) == "/tmp/venvship-tutorial/demo: changed (sha256:<digest>, 8 packages) <id>-1"
    )
    assert normalise("   original-20261122T003311     (adopted)  ", {}) == "   original-<time>     (adopted)"
