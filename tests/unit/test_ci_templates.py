"""The CI publishing templates in ci/: valid YAML, the expected jobs, and command lines the CLI accepts.

Every ``venvship …`` and ``venv-pull …`` command in the templates' scripts (and in the how-to's
shell blocks) is parsed with the real argparse parsers, so a renamed command or option fails here
rather than in someone's pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from venvship.cli.venv_pull_main import _parser as venv_pull_parser
from venvship.cli.venvship_main import parser as venvship_parser
from venvship.oci.reference import RegistryRef, parse_ref

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tests run on 3.11 too
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "ci" / "github" / "venvship-publish.yml"
GITLAB = ROOT / "ci" / "gitlab" / ".gitlab-ci.yml"
HOWTO = ROOT / "docs" / "how-to" / "publish-from-ci.md"

# What shell variables stand for when a command line is parsed.
PLACEHOLDERS = {
    "VENVSHIP_NAMESPACE": "registry.example.com/team/venvs",
    "VENVSHIP_RECIPES": "recipes",
    "ref": "demo:1.0",
}
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "venvship": venvship_parser,
    "venv-pull": venv_pull_parser,
}
SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ";;", "|&"}
REDIRECTS = {">", ">>", "<", "<<", "<<-", ">&", "<&", "&>", "2>", "2>&1"}
KEYWORDS = {"do", "then", "else", "elif", "while", "until", "if", "!", "time", "{", "}", "exec"}


@dataclass(frozen=True)
class Command:
    """One simple command of a script: its words (variables still unexpanded) and where it came from."""

    words: tuple[str, ...]
    line: str
    piped: bool  # the previous command's output is its stdin

    @property
    def program(self) -> str:
        return Path(self.words[0]).name if self.words else ""


def scripts_github(doc: dict[str, Any]) -> Iterator[str]:
    for job in doc["jobs"].values():
        for step in job.get("steps", []):
            if "run" in step:
                yield step["run"]


def scripts_gitlab(doc: dict[str, Any]) -> Iterator[str]:
    for name, job in doc.items():
        if not isinstance(job, dict) or name in ("variables", "default", "workflow"):
            continue
        for key in ("before_script", "script", "after_script"):
            yield from job.get(key, [])


def logical_lines(script: str) -> Iterator[tuple[str, str | None]]:
    """Yield (line, heredoc body or None): continuations joined, heredoc bodies split off."""
    script = re.sub(r"\$\{\{.*?\}\}", "placeholder", script)  # GitHub expressions
    lines = script.splitlines()
    i, buf = 0, ""
    while i < len(lines):
        line = lines[i]
        i += 1
        buf = f"{buf} {line.strip()}" if buf else line.strip()
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
            continue
        body = None
        heredoc = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", buf)
        if heredoc:
            start = i
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                i += 1
            body = "\n".join(lines[start:i])
            i += 1
        if buf and not buf.startswith("#"):
            yield buf, body
        buf = ""


def commands(script: str) -> Iterator[tuple[Command, str | None]]:
    """Yield the simple commands of a shell script, each with the heredoc its line feeds it."""
    for line, body in logical_lines(script):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        piped = False
        skip_next = False
        for token in [*lexer, ";"]:
            if skip_next:
                skip_next = False
            elif token in SEPARATORS:
                while words and words[0] in KEYWORDS:
                    words.pop(0)
                while words and re.match(r"^\w+=", words[0]):
                    words.pop(0)  # VAR=value before the command
                if words:
                    yield Command(words=tuple(words), line=line, piped=piped), body
                piped = token == "|"
                words = []
            elif token in REDIRECTS:
                skip_next = True
            else:
                words.append(token)


def expand(word: str) -> str:
    """Replace ``$VAR`` and ``${VAR…}`` with placeholder values."""

    def value(match: re.Match[str]) -> str:
        return PLACEHOLDERS.get(match.group(1) or match.group(2), "placeholder")

    return re.sub(r"\$\{(\w+)[^}]*\}|\$(\w+)", value, word)


def parse(cmd: Command) -> argparse.Namespace:
    """Parse ``cmd`` with the real parser of its program; fail the test with argparse's message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return PARSERS[cmd.program]().parse_args([expand(w) for w in cmd.words[1:]])
    except SystemExit:
        pytest.fail(f"the CLI rejects: {cmd.line}\n{err.getvalue()}")


def cli_commands(scripts: Iterator[str]) -> list[tuple[Command, argparse.Namespace]]:
    return [(cmd, parse(cmd)) for script in scripts for cmd, _ in commands(script) if cmd.program in PARSERS]


def shell_blocks(markdown: str) -> list[str]:
    """Return the fenced shell blocks of ``markdown``; of ``console`` blocks only the ``$`` lines."""
    out = []
    for lang, block in re.findall(r"```(sh|bash|shell|console)\n(.*?)```", markdown, flags=re.S):
        if lang == "console":
            kept, more = [], False
            for line in block.splitlines():
                if line.startswith("$ ") or more:
                    kept.append(line[2:] if line.startswith("$ ") else line)
                    more = line.endswith("\\")
            block = "\n".join(kept)
        out.append(block)
    return out


def load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path}: not a YAML mapping"
    return doc


def template_scripts(path: Path) -> Iterator[str]:
    return scripts_github(load(path)) if path == GITHUB else scripts_gitlab(load(path))


# -- structure --------------------------------------------------------------------------------------


def test_github_workflow_builds_on_both_architectures_then_indexes() -> None:
    doc = load(GITHUB)
    triggers = doc["on"] if "on" in doc else doc[True]  # YAML 1.1 reads a bare `on` key as True
    assert "workflow_dispatch" in triggers
    assert doc["permissions"]["packages"] == "write"
    build, index = doc["jobs"]["build"], doc["jobs"]["index"]
    runners = {entry["runner"]: entry["arch"] for entry in build["strategy"]["matrix"]["include"]}
    assert runners == {"ubuntu-24.04": "amd64", "ubuntu-24.04-arm": "arm64"}
    assert build["runs-on"] == "${{ matrix.runner }}"
    assert build["strategy"]["fail-fast"] is False  # one platform failing still shows the other
    needs = index["needs"]
    assert (needs if isinstance(needs, list) else [needs]) == ["build"]
    assert "matrix" not in index.get("strategy", {})


def test_gitlab_pipeline_builds_on_both_architectures_then_indexes() -> None:
    doc = load(GITLAB)
    assert doc["stages"].index("build") < doc["stages"].index("index")
    build, index = doc["venvship-build"], doc["venvship-index"]
    [matrix] = build["parallel"]["matrix"]
    assert matrix["RUNNER_TAG"] == ["saas-linux-small-amd64", "saas-linux-small-arm64"]
    assert build["tags"] == ["$RUNNER_TAG"]
    assert build["stage"] == "build" and index["stage"] == "index"
    assert index["needs"] == ["venvship-build"]
    assert "CI_REGISTRY_IMAGE" in doc["variables"]["VENVSHIP_NAMESPACE"]


# -- command lines ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_template_commands_parse_with_the_cli(path: Path) -> None:
    found = cli_commands(template_scripts(path))
    assert sorted({args.command for _, args in found}) == ["build", "index", "refs"]
    for cmd, args in found:
        if args.command == "refs":  # reads recipes only: no registry, no password
            assert args.recipes == [PLACEHOLDERS["VENVSHIP_RECIPES"]], cmd.line
            continue
        # Passwords only ever travel on stdin, from a pipe.
        assert args.username and args.password_stdin and cmd.piped, cmd.line
        assert not any("PASSWORD" in w or "secrets." in w for w in cmd.words), cmd.line
        if args.command == "build":
            out = parse_ref(args.output)
            assert isinstance(out, RegistryRef) and out.tag is None and out.repository, cmd.line
        else:
            ref = parse_ref(args.ref)
            assert isinstance(ref, RegistryRef) and ref.tag == "1.0", cmd.line


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_only_a_job_that_builds_nothing_holds_the_signing_key(path: Path) -> None:
    """Dependencies' build code runs in the build jobs: neither their commands nor their
    environment name the signing key; the index job signs (#20)."""
    doc = load(path)
    if path == GITHUB:
        build, index = doc["jobs"]["build"], doc["jobs"]["index"]
        build_scripts = [step["run"] for step in build["steps"] if "run" in step]
        [signing] = [step for step in index["steps"] if "VENVSHIP_SIGNING_KEY" in step.get("env", {})]
        # The one step with the key runs venvship alone: nothing installed or built there.
        assert {c.program for c, _ in commands(signing["run"])} <= {"venvship", "printf", "read", "done"}
    else:
        build, index = doc["venvship-build"], doc["venvship-index"]
        build_scripts = list(build["script"])
        assert "environment" not in build
        assert index["environment"]["name"] == "venvship-signing"
    assert "SIGNING" not in yaml.safe_dump(build)
    for cmd, args in cli_commands(iter(build_scripts)):
        assert args.command == "build" and not args.sign_key, cmd.line
    found = cli_commands(template_scripts(path))
    signing = [(c, a) for c, a in found if getattr(a, "key", None) or getattr(a, "sign_key", None)]
    assert {a.command for _, a in signing} == {"index"}
    # It signs only the manifests the build jobs recorded, which travel as job artifacts.
    assert all(a.built == ["build-*.json"] for _, a in signing)
    for cmd, args in cli_commands(iter(build_scripts)):
        assert args.json and re.search(r'> "build-[^"]+\.json"$', cmd.line), cmd.line


def test_github_checkout_leaves_no_token_in_the_build_jobs_workspace() -> None:
    """actions/checkout keeps the workflow's GITHUB_TOKEN in .git/config unless told not to: the
    build jobs run dependencies' build code in that workspace, and that token is the default
    registry password (packages: write) (#20)."""
    jobs = load(GITHUB)["jobs"]
    checkouts = [
        step
        for job in jobs.values()
        for step in job["steps"]
        if str(step.get("uses", "")).startswith("actions/checkout@")
    ]
    assert checkouts
    for step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, step


def test_howto_commands_parse_with_the_cli() -> None:
    found = cli_commands(iter(shell_blocks(HOWTO.read_text())))
    assert {(cmd.program, args.command) for cmd, args in found} >= {
        ("venv-pull", "install"),
        ("venvship", "build"),
        ("venvship", "index"),
    }


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_recipe_listing_command_names_each_recipe_and_version(path: Path) -> None:
    """The index job lists NAME:TAG with `venvship refs` (no Python of its own), into the file its
    index loop reads; run here against this repository's recipes/."""
    listing = [
        cmd
        for script in template_scripts(path)
        for cmd, _ in commands(script)
        if cmd.program == "venvship" and cmd.words[1:2] == ("refs",)
    ]
    assert len(listing) == 1
    assert re.search(r">\s*refs\.txt\s*$", listing[0].line)
    assert any("done < refs.txt" in script for script in template_scripts(path))
    assert not [
        cmd for script in template_scripts(path) for cmd, _ in commands(script) if cmd.program == "python"
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "venvship.cli.venvship_main", *(expand(w) for w in listing[0].words[1:])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    expected = []
    for recipe in sorted((ROOT / "recipes").glob("*.toml")):
        venv = tomllib.loads(recipe.read_text()).get("venv")
        if venv:
            expected.append(f"{venv['name']}:{venv['version'].replace('+', '_')}")
    assert expected, "no recipes to list"
    assert proc.stdout.splitlines() == expected


def test_command_splitter_sees_pipes_loops_and_continuations() -> None:
    """The splitter itself: otherwise a broken splitter could hide every command from the tests."""
    script = (
        "while read -r ref; do\n"
        '  printf \'%s\\n\' "$PW" | venvship index "$VENVSHIP_NAMESPACE/$ref" \\\n'
        "    --password-stdin\n"
        "done < refs.txt\n"
        "cat <<'EOF'\nvenvship not-a-command\nEOF\n"
    )
    found = [cmd for cmd, _ in commands(script)]
    assert [c.words for c in found] == [
        ("read", "-r", "ref"),
        ("printf", "%s\\n", "$PW"),
        ("venvship", "index", "$VENVSHIP_NAMESPACE/$ref", "--password-stdin"),
        ("done",),
        ("cat",),
    ]
    assert found[2].piped and not found[1].piped
    assert expand(found[2].words[2]) == "registry.example.com/team/venvs/demo:1.0"
