"""Both command lines: help with examples, common options anywhere, JSON everywhere (errors too),
a quiet exit on a closed pipe, ``venvship list``, and the zipapp on too old a Python."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from tests.needs import require_python

from venvship.artifact.documents import MANIFEST_TYPE, Descriptor
from venvship.cli import venv_pull_main, venvship_main
from venvship.install.zipapp import build_zipapp
from venvship.oci.layout import Layout

SRC = Path(__file__).resolve().parents[2] / "src"
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "venvship": venvship_main.parser,
    "venv-pull": venv_pull_main._parser,
}


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for prog, build in PARSERS.items():
        top = build()
        yield prog, top
        for action in top._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield f"{prog} {name}", sub


@pytest.mark.parametrize(("name", "parser"), list(_parsers()), ids=[n for n, _ in _parsers()])
def test_every_help_has_an_example_and_explains_every_argument(
    name: str, parser: argparse.ArgumentParser
) -> None:
    assert parser.epilog and parser.epilog.startswith("example:\n  "), f"{name}: no example"
    example = parser.epilog.split("\n", 1)[1].strip()
    assert example.startswith(name.split()[0]), example
    silent = [
        a.option_strings[0] if a.option_strings else a.dest
        for a in parser._actions
        if not a.help and not isinstance(a, argparse._SubParsersAction)
    ]
    assert silent == []
    assert "example:\n  " in parser.format_help()  # shown as written, not re-wrapped


@pytest.mark.parametrize(
    ("prog", "argv"),
    [
        ("venvship", ["inspect", "oci:x:demo:1", "-v", "--json"]),
        ("venvship", ["-v", "--json", "inspect", "oci:x:demo:1"]),
        ("venvship", ["--json", "list", "oci:x", "-v"]),
        ("venv-pull", ["status", "-v", "--json"]),
        ("venv-pull", ["-v", "--json", "status"]),
        ("venv-pull", ["--json", "install", "oci:x:demo:1", "-v"]),
    ],
)
def test_common_options_go_before_or_after_the_command(prog: str, argv: list[str]) -> None:
    args = PARSERS[prog]().parse_args(argv)
    assert (args.verbose, args.quiet, args.json) == (1, False, True)


def test_quiet_after_the_command() -> None:
    args = venv_pull_main._parser().parse_args(["prune", "-q"])
    assert (args.verbose, args.quiet, args.json) == (0, True, False)


def test_a_usage_error_with_json_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert venvship_main.main(["inspect", "--json", "--no-such-option", "oci:x:demo:1"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "error": "venvship: error: unrecognized arguments: --no-such-option",
        "schema": 1,
    }
    assert err.startswith("usage: venvship") and err.rstrip().endswith("--no-such-option")
    assert venv_pull_main.main(["install"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "the following arguments are required: REF" in err


def test_an_error_with_json_is_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert venvship_main.main(["inspect", f"oci:{tmp_path}:demo:1.0", "--json"]) == 1
    out, err = capsys.readouterr()
    message = f"{tmp_path}: not an OCI image layout (no oci-layout or index.json)"
    assert json.loads(out) == {"error": message, "schema": 1}
    assert err == f"venvship: error: {message}\n"
    assert venv_pull_main.main(["--json", "verify", str(tmp_path / "nothing")]) == 1
    assert json.loads(capsys.readouterr().out)["schema"] == 1


def test_an_error_line_carries_no_terminal_control(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error may quote what a store or a user wrote: escape sequences are shown, not sent."""
    folder = tmp_path / "x\x1b[2Jy"
    assert venvship_main.main(["inspect", f"oci:{folder}:demo:1.0"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "x\\x1b[2Jy: not an OCI image layout" in err, err


def test_status_json_without_dest_is_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert venv_pull_main.main(["status", "--cache", str(tmp_path / "cache"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"schema": 1, "venvs": [], "cache": str(tmp_path / "cache")}


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`venv-pull status | head`: the reader is gone before venv-pull writes; no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "venvship.cli.venv_pull_main", "status", "--cache", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the child has even imported venvship
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def _layout_with_refs(root: Path) -> Layout:
    layout = Layout.create(root)
    digest, _ = layout.put_bytes(b'{"layers": []}')
    desc = Descriptor(media_type=MANIFEST_TYPE, digest=digest, size=14)
    layout.set_refs({"demo:1.0": desc, "demo:1.0-debian-12-amd64-cp311": desc, "other:2": desc})
    return layout


def test_list_a_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = _layout_with_refs(tmp_path / "oci")
    digest = layout.resolve("demo:1.0").digest
    assert venvship_main.main(["list", f"oci:{tmp_path / 'oci'}:demo"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"oci:{tmp_path / 'oci'}:demo:1.0  {digest}",
        f"oci:{tmp_path / 'oci'}:demo:1.0-debian-12-amd64-cp311  {digest}",
    ]
    assert venvship_main.main(["list", f"oci:{tmp_path / 'oci'}", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1
    assert [r["ref"].rsplit(":", 2)[-2:] for r in data["refs"]] == [
        ["demo", "1.0"],
        ["demo", "1.0-debian-12-amd64-cp311"],
        ["other", "2"],
    ]
    assert venvship_main.main(["list", f"oci:{tmp_path / 'oci'}:demo:1.0"]) == 1
    assert "name a layout or a repository to list" in capsys.readouterr().err
    # A name the layout does not have is an error line, not an empty answer.
    assert venvship_main.main(["list", f"oci:{tmp_path / 'oci'}:dmeo"]) == 1
    assert (
        capsys.readouterr().err.splitlines()[-1].startswith(f"venvship: error: oci:{tmp_path / 'oci'}:dmeo: ")
    )


@pytest.mark.parametrize(
    "version",
    [
        # No package index or uv offers a 3.6 any more: this case runs where pyenv has one.
        pytest.param("3.6", marks=pytest.mark.may_skip("no installer provides python3.6")),
        "3.8",
    ],
)
def test_the_zipapp_says_it_needs_python_39(tmp_path: Path, version: str) -> None:
    python = require_python(version)
    pyz = build_zipapp(tmp_path / "venv-pull.pyz")
    proc = subprocess.run([python, pyz, "status"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == f"venv-pull: error: needs Python 3.9 or newer; {python} is Python {version}\n"
