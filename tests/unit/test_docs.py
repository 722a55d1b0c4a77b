"""The user documentation stays true: links resolve, shown commands parse, references are complete.

docs/ and README.md are checked against the code itself: the argparse parsers of both commands,
the recipe schema in recipe/recipefile.py and the role-variable mapping of recipe/importrole.py. Renaming a
command, an option or a recipe key without updating the docs fails here.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from venvship.recipe import importrole
from venvship.recipe import recipefile as recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the build side runs on 3.9 and 3.10 too
    import tomli as tomllib
from venvship.cli import venv_pull_main, venvship_main
from venvship.cli.outcome import UsageError

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CLI_MD = DOCS / "reference" / "cli.md"
RECIPE_MD = DOCS / "reference" / "recipe.md"


def _venv_pull_parser() -> argparse.ArgumentParser:
    # venv-pull keeps its parser builder private; it is the one place argv is defined.
    return venv_pull_main._parser()


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "venvship": venvship_main.parser,
    "venv-pull": _venv_pull_parser,
}
SHELL_LANGS = {"sh", "shell", "bash", "console"}


# -- Markdown, just enough of it ------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string, its first line number and its text."""

    lang: str
    line: int
    text: str


@dataclass(frozen=True)
class Doc:
    """One Markdown file split into prose lines (outside code blocks) and code blocks."""

    path: Path
    prose: tuple[tuple[int, str], ...]
    blocks: tuple[Block, ...]

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else self.path.name


_FENCE = re.compile(r"^\s{0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


def parse_markdown(path: Path, text: str | None = None) -> Doc:
    """Return ``path`` (or ``text``) split into prose lines and fenced code blocks."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    fence: str | None = None
    lang, start = "", 0
    body: list[str] = []
    for n, line in enumerate(lines, 1):
        m = _FENCE.match(line)
        if fence is None and m:
            fence, lang, start, body = m.group("fence"), m.group("info").lower(), n, []
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            blocks.append(Block(lang=lang, line=start, text="\n".join(body)))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append((n, line))
    return Doc(path=path, prose=tuple(prose), blocks=tuple(blocks))


_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")


def headings(doc: Doc) -> list[tuple[int, int, str]]:
    """Return (line number, level, text) of every ATX heading outside code blocks."""
    out = []
    for n, line in doc.prose:
        m = _HEADING.match(line)
        if m:
            out.append((n, len(m.group("level")), m.group("text")))
    return out


def github_slug(text: str) -> str:
    """Return the anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(doc: Doc) -> set[str]:
    """Return every heading anchor of ``doc``, duplicates numbered as GitHub does (-1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for _, _, text in headings(doc):
        slug = github_slug(text)
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        out.add(slug)
    return out


def sections(doc: Doc) -> dict[str, str]:
    """Return section text keyed by the first code span of its heading (``venvship build``)."""
    hs = headings(doc)
    all_lines = doc.path.read_text(encoding="utf-8").splitlines()
    out: dict[str, str] = {}
    for i, (n, level, text) in enumerate(hs):
        code = _INLINE_CODE.search(text)
        if not code:
            continue
        end = next((m for m, lv, _ in hs[i + 1 :] if lv <= level), len(all_lines) + 1)
        out.setdefault(code.group(2).strip(), "\n".join(all_lines[n : end - 1]))
    return out


_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(?P<target>\S+)")


def links(doc: Doc) -> Iterator[tuple[int, str]]:
    """Yield (line number, target) of every inline link and link definition in prose."""
    for n, line in doc.prose:
        text = _INLINE_CODE.sub("", line)
        for m in _LINK.finditer(text):
            yield n, m.group("target").strip("<>")
        d = _REF_DEF.match(text)
        if d:
            yield n, d.group("target")


def broken_links(doc: Doc) -> list[str]:
    """Return one line per relative link of ``doc`` whose file or #anchor does not exist."""
    problems = []
    for n, target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:: not ours to check
        path_part, _, anchor = target.partition("#")
        dest = (doc.path.parent / path_part).resolve() if path_part else doc.path
        where = f"{doc.name}:{n}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file {dest}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(parse_markdown(dest)):
            problems.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    return problems


# -- commands shown in code blocks ----------------------------------------------------------------

_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}
_PLACEHOLDER = re.compile(r"<[A-Za-z][\w .…-]*>")


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending, first = "", 0
    for n, line in lines:
        if not pending:
            first = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            out.append((first, pending + line))
            pending = ""
    if pending:
        out.append((first, pending))
    return out


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """Return (line, command) of a block: ``$ `` lines of console output, every line of a script."""
    lines = [(block.line + i, line) for i, line in enumerate(block.text.splitlines(), 1)]
    if block.lang not in SHELL_LANGS - {"console"}:
        # Console blocks mix commands and output; a command line starts with "$ ".
        picked: list[tuple[int, str]] = []
        in_cmd = False
        for n, line in lines:
            if line.startswith("$ "):
                picked.append((n, line[2:]))
                in_cmd = line.rstrip().endswith("\\")
            elif in_cmd:
                picked.append((n, line))
                in_cmd = line.rstrip().endswith("\\")
        lines = picked
    return [(n, ln) for n, ln in _join_continuations(lines) if ln.strip() and not ln.lstrip().startswith("#")]


def argv_of(words: list[str]) -> tuple[str, list[str]] | None:
    """Return (program, arguments) if ``words`` runs venvship or venv-pull, else None."""
    words = list(words)
    while words and (
        re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in ("sudo", "env", "time", "exec")
    ):
        words.pop(0)
    if not words:
        return None
    first = Path(words[0]).name
    if first in PARSERS:
        return first, words[1:]
    if first in ("venv-pull.pyz",):
        return "venv-pull", words[1:]
    if re.match(r"^python3?(\.\d+)?$", first) and len(words) > 1 and Path(words[1]).name == "venv-pull.pyz":
        return "venv-pull", words[2:]
    return None


def commands_in_line(line: str) -> list[tuple[str, list[str]]]:
    """Return every venvship/venv-pull invocation in one shell line (pipes and && split it)."""
    lexer = shlex.shlex(_PLACEHOLDER.sub("X", line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    segments: list[list[str]] = [[]]
    skip = False
    for i, tok in enumerate(tokens):
        if skip:
            skip = False
            continue
        if tok in _SEPARATORS:
            segments.append([])
        elif set(tok) <= set("<>&") and tok:
            skip = True  # a redirection and its target
            if segments[-1] and segments[-1][-1].isdigit() and tokens[i - 1] == segments[-1][-1]:
                segments[-1].pop()  # the fd number of 2>&1
        else:
            segments[-1].append(tok)
    return [found for seg in segments if (found := argv_of(seg))]


_JINJA_LIST = re.compile(r"\[\s*'(?:venvship|venv-pull)'[^\]]*\]")


def _yaml_commands(node: Any) -> Iterator[list[str]]:
    """Yield the argv lists and command strings in an Ansible task tree that run our commands."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("cmd", "command", "shell", "_raw_params") and isinstance(value, str):
                for prog, args in commands_in_line(value):
                    yield [prog, *args]
            else:
                yield from _yaml_commands(value)
    elif isinstance(node, list):
        if node and isinstance(node[0], str) and argv_of([str(x) for x in node]):
            yield [str(x) for x in node]
        else:
            for item in node:
                yield from _yaml_commands(item)
    elif isinstance(node, str) and "{{" in node:
        # argv: "{{ ['venv-pull', 'install', ref, '--json'] + (...) }}": the literal list, names as X.
        for m in _JINJA_LIST.finditer(node):
            literal = re.sub(r"(?<=[\[,])\s*([A-Za-z_]\w*)\s*(?=[,\]])", " 'X'", m.group(0))
            yield [str(x) for x in ast.literal_eval(literal)]


def commands_in_block(block: Block) -> list[tuple[int, str, list[str]]]:
    """Return (line, program, arguments) for every runnable command the block shows."""
    out: list[tuple[int, str, list[str]]] = []
    if block.lang in ("yaml", "yml"):
        for argv in _yaml_commands(yaml.safe_load(block.text)):
            found = argv_of(argv)
            if found:
                out.append((block.line, *found))
        return out
    for n, line in shell_commands(block):
        out.extend((n, prog, args) for prog, args in commands_in_line(line))
    return out


def parse_error(prog: str, args: list[str]) -> str | None:
    """Return argparse's complaint about ``prog args``, or None if the real parser accepts them."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            PARSERS[prog]().parse_args(args)
    except UsageError as exc:
        return str(exc)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return None


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")]


def synopsis_errors(block: Block) -> list[str]:
    """Check usage lines (``venvship build [--output REF] ...``) of a plain block against the parsers."""
    problems = []
    current: list[str] = []
    groups: list[list[str]] = []
    for line in block.text.splitlines():
        if line.split(" ", 1)[0] in PARSERS:
            current = [line]
            groups.append(current)
        elif re.match(r"^\s+\[", line) and current:
            current.append(line)
        else:
            current = []
    for group in groups:
        words = " ".join(group).split()
        prog, parser = words[0], PARSERS[words[0]]()
        subs = _subparsers(parser)
        if len(words) > 1 and words[1] in subs:
            parser = subs[words[1]]
        elif len(words) > 1 and not words[1].startswith(("[", "-")) and words[1] != "COMMAND":
            problems.append(f"line {block.line}: {prog} has no command {words[1]!r}")
            continue
        known = set(_options(parser)) | {"-h", "--help"}
        for opt in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", " ".join(words[1:])):
            if opt not in known:
                problems.append(f"line {block.line}: {' '.join(words[:2])}: no option {opt}")
    return problems


# -- the documents --------------------------------------------------------------------------------


def doc_files() -> list[Path]:
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


DOC_FILES = doc_files()


def test_docs_exist() -> None:
    names = {str(p.relative_to(ROOT)) for p in DOC_FILES}
    for name in (
        "docs/index.md",
        "docs/tutorial.md",
        "docs/explanation.md",
        "docs/how-to/air-gapped.md",
        "docs/how-to/ansible.md",
        "docs/how-to/replace-the-role.md",
        "docs/reference/recipe.md",
        "docs/reference/cli.md",
        "docs/reference/artifact.md",
    ):
        assert name in names


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(parse_markdown(path)) == []


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shown_commands_parse(path: Path) -> None:
    doc = parse_markdown(path)
    problems = []
    for block in doc.blocks:
        for line, prog, args in commands_in_block(block):
            err = parse_error(prog, args)
            if err:
                problems.append(f"{doc.name}:{line}: {prog} {shlex.join(args)}: {err}")
        if block.lang in ("", "text"):
            problems += [f"{doc.name}: {p}" for p in synopsis_errors(block)]
    assert problems == []


def test_tutorial_shows_the_whole_cycle() -> None:
    """The command check has something to check: the tutorial's commands are all found."""
    shown = [
        (prog, args[0])
        for block in parse_markdown(DOCS / "tutorial.md").blocks
        for _, prog, args in commands_in_block(block)
        if args
    ]
    for step in ("build", "inspect", "diff"):
        assert ("venvship", step) in shown
    for step in ("install", "status", "rollback", "verify"):
        assert ("venv-pull", step) in shown


def test_tutorial_matches_the_demo_recipe() -> None:
    """The recipe the tutorial shows is recipes/demo.toml, and its sed edits still apply to it."""
    demo = ROOT / "recipes" / "demo.toml"
    shown = [b for b in parse_markdown(DOCS / "tutorial.md").blocks if b.lang == "toml"]
    assert [tomllib.loads(b.text) for b in shown] == [tomllib.loads(demo.read_text(encoding="utf-8"))]
    recipe_text = demo.read_text(encoding="utf-8")
    assert re.search(r'^version = "1.0"$', recipe_text, re.M) and re.search(
        r'^value = "1.0"$', recipe_text, re.M
    )
    pins = (ROOT / "recipes" / "demo-constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^idna==3.10$", pins, re.M)


def test_cli_reference_lists_every_command_and_option() -> None:
    secs = sections(parse_markdown(CLI_MD))
    missing = []
    for prog, build in PARSERS.items():
        parser = build()
        top = secs.get(prog)
        assert top is not None, f"{CLI_MD.name}: no section headed `{prog}`"
        missing += [f"{prog} {o}" for o in _options(parser) if not _mentions(_table_text(top), o)]
        for name, sub in _subparsers(parser).items():
            body = secs.get(f"{prog} {name}")
            if body is None:
                missing.append(f"section `{prog} {name}`")
                continue
            missing += [f"{prog} {name} {o}" for o in _options(sub) if not _mentions(_table_text(body), o)]
    assert missing == []


def _mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def _table_text(section: str) -> str:
    """Return the table lines of a section: an option must be explained, not only in a usage line."""
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def _table_rows(text: str) -> dict[str, str]:
    """Return table rows keyed by the code span in their first cell."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^\|\s*`([^`]+)`\s*\|(.*)$", line)
        if m:
            rows.setdefault(m.group(1), m.group(2))
    return rows


# recipe/recipefile.py's tables and the heading each has in recipe.md
_TABLE_HEADINGS = {"venv": "[venv]", "venv.build": "[venv.build]", "venv.install": "[venv.install]"}


def test_recipe_reference_lists_every_key() -> None:
    secs = sections(parse_markdown(RECIPE_MD))
    tables = dict(_TABLE_HEADINGS, **{"venv.facts": "[[venv.facts]]"})
    assert set(recipe._KEYS) - {""} == set(tables), "a recipe table without a section in recipe.md"
    missing = []
    for table, heading in tables.items():
        body = secs.get(heading)
        assert body is not None, f"{RECIPE_MD.name}: no section headed `{heading}`"
        rows = _table_rows(body)
        missing += [f"{table}.{key}" for key in recipe._KEYS[table] if key not in rows]
    assert missing == []


def _role_variable_homes() -> dict[str, tuple[str, str]]:
    """Return role variable → (recipe table, key), as import-role maps them."""
    homes: dict[str, tuple[str, str]] = {}
    for table in (importrole._LISTS, importrole._ARGS, importrole._ENVS, importrole._WHOLE):
        homes.update(table)
    homes.update({var: ("venv", key) for var, key in importrole._STRINGS.items()})
    homes.update({var: ("venv", key) for var, (key, _) in importrole._CHOICES.items()})
    homes["venv_facts_dest"] = ("venv.facts", "file")
    return homes


def test_recipe_reference_gives_every_role_variable_a_home() -> None:
    """Every variable import-role knows or ignores has a row, naming the key import-role maps it to."""
    text = RECIPE_MD.read_text(encoding="utf-8")
    rows = _table_rows(text[text.index("## Every role variable") :])
    variables = set(importrole.KNOWN) | set(importrole.IGNORED)
    assert sorted(variables - set(rows)) == []
    homes = _role_variable_homes()
    assert set(homes) == set(importrole.KNOWN)
    assert [f"{var} → {key}" for var, (_, key) in homes.items() if not _mentions(rows[var], key)] == []
    # And each key's own row names the variable it replaces.
    secs = sections(parse_markdown(RECIPE_MD))
    headings_of = dict(_TABLE_HEADINGS, **{"venv.facts": "[[venv.facts]]"})
    wrong = [
        f"{headings_of[table]} {key}: does not name {var}"
        for var, (table, key) in homes.items()
        if var not in _table_rows(secs[headings_of[table]]).get(key, "")
    ]
    assert wrong == []


# -- the checks can fail --------------------------------------------------------------------------


def _doc(tmp_path: Path, text: str, name: str = "page.md") -> Doc:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return parse_markdown(path)


def test_slugs_follow_github() -> None:
    assert github_slug("`venvship build`") == "venvship-build"
    assert github_slug("`[[venv.facts]]`") == "venvfacts"
    assert github_slug("Why venv-pull uses only the standard library") == (
        "why-venv-pull-uses-only-the-standard-library"
    )
    assert github_slug("1. Install venvship") == "1-install-venvship"


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Part `two`\n", encoding="utf-8")
    doc = _doc(
        tmp_path,
        "# Page\n\n[ok](other.md#part-two) [self](#page) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad anchor](other.md#part-three)\n\n```sh\n[not a link](nowhere.md)\n```\n",
    )
    problems = broken_links(doc)
    assert len(problems) == 2
    assert "missing.md" in problems[0] and "#part-three" in problems[1]


def test_wrong_commands_are_found() -> None:
    block = Block(
        lang="console",
        line=1,
        text="$ venvship buidl recipes/\n$ venv-pull install REF --dest /x --jsn\noutput venvship nothing\n"
        "$ echo pw | venv-pull install REF --username u --password-stdin 2>&1 && venvship inspect oci:b:d:1\n",
    )
    found = commands_in_block(block)
    assert [(p, a[0]) for _, p, a in found] == [
        ("venvship", "buidl"),
        ("venv-pull", "install"),
        ("venv-pull", "install"),
        ("venvship", "inspect"),
    ]
    errors = [parse_error(p, a) for _, p, a in found]
    assert errors[0] and "buidl" in errors[0]
    assert errors[1] and "--jsn" in errors[1]
    assert errors[2:] == [None, None]


def test_commands_in_yaml_and_synopses_are_checked() -> None:
    play = Block(
        lang="yaml",
        line=1,
        text="- name: x\n  ansible.builtin.command:\n    argv: [venv-pull, install, REF, --jsn]\n"
        "- name: y\n  ansible.builtin.command:\n"
        "    argv: \"{{ ['venv-pull', 'install', ref, '--json'] + (['--check'] if c else []) }}\"\n",
    )
    found = commands_in_block(play)
    assert [parse_error(p, a) is None for _, p, a in found] == [False, True]
    usage = Block(lang="", line=1, text="venvship build [RECIPE ...] [--output REF]\n    [--no-such]\n")
    assert synopsis_errors(usage) == ["line 1: venvship build: no option --no-such"]


def test_each_exit_code_is_listed_once() -> None:
    text = (DOCS / "reference" / "cli.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = re.findall(r"^\| (\d+) \|", section, flags=re.M)
    assert codes and len(codes) == len(set(codes)), codes
