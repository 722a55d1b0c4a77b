"""Build ``venv-pull.pyz``: the target modules only, runnable by any Python 3.9+ (stdlib ``zipapp``)."""

from __future__ import annotations

import ast
import shutil
import tempfile
import zipapp
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent

ENTRY = Path("cli/venv_pull_main.py")

# The zipapp's entry point. Older Pythons would fail on the first annotation with a traceback: the
# version is checked first, in syntax any Python reads (2.7 and 3.0+), and refused in one line.
MAIN = """\
import sys
if sys.version_info < (3, 9):
    sys.exit("venv-pull: error: needs Python 3.9 or newer; %s is Python %d.%d" % (
        sys.executable or "this interpreter", sys.version_info[0], sys.version_info[1]))
from venvship.cli.venv_pull_main import main
sys.exit(main())
"""


# What runs the zipapp when it is started as a program: a shell line that runs python3 isolated
# (-I: no PYTHONPATH, PYTHONHOME or user site). Root may start it from a shell that kept another
# user's environment (``su`` without ``-``); with ``#!/usr/bin/env python3`` their PYTHONPATH would
# come before the stdlib. ``env -S`` would do it in the #! line, but busybox's env lacks it. The
# shell stops at ``exec``; Python finds the zip from its end, whatever comes before it.
LAUNCHER = b'#!/bin/sh\nexec python3 -I "$0" "$@"\n'


def _module_file(package: Path, name: str) -> Path | None:
    """Return the file of module ``venvship.a.b`` under ``package`` (``a/b.py`` or ``a/b/__init__.py``)."""
    parts = name.split(".")[1:]
    for candidate in (Path(*parts).with_suffix(".py") if parts else None, Path(*parts, "__init__.py")):
        if candidate is not None and (package / candidate).is_file():
            return candidate
    return None


def _imported(package: Path, rel: Path) -> set[str]:
    """Return the ``venvship`` modules the file ``rel`` imports, at its top or inside functions."""
    module = ".".join(["venvship", *rel.with_suffix("").parts])
    own = module if rel.name == "__init__.py" else module.rsplit(".", 1)[0]
    if rel.name == "__init__.py":
        module = module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse((package / rel).read_text(), filename=str(rel))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("venvship"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own.split(".")[: len(own.split(".")) - (node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            if target.startswith("venvship"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)  # submodules imported by name
    return out


def target_files(package: Path = PACKAGE) -> list[Path]:
    """Return the target side's files: the import closure of ``venv-pull``'s entry point, relative
    to the package, with each package's ``__init__.py`` (derived, never a hand-kept list).

    The package's own ``__init__`` imports the build side lazily, on first use of its public
    names; venv-pull never uses them, so those names are not followed.
    """
    seen: set[Path] = set()
    todo = [ENTRY, Path("__init__.py")]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        for folder in rel.parents:
            init = folder / "__init__.py"
            if (package / init).is_file() and init not in seen:
                todo.append(init)
        if rel == Path("__init__.py"):
            continue  # its lazy __getattr__ reaches the build side only for build-side callers
        for name in _imported(package, rel):
            found = _module_file(package, name)
            if found is not None and found not in seen:
                todo.append(found)
    return sorted(seen)


def build_zipapp(out: Path) -> Path:
    """Write ``out`` (e.g. ``dist/venv-pull.pyz``) holding only the target modules; return it.

    Example: ``build_zipapp(Path("dist/venv-pull.pyz"))``
    """
    with tempfile.TemporaryDirectory(prefix="venv-pull-zipapp-") as tmp:
        tree = Path(tmp) / "venvship"
        for rel in target_files():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PACKAGE / rel, tree / rel)
        # Our own __main__ instead of create_archive(main=...): zipapp's generated one drops
        # main()'s return value, and venv-pull's exit code is its contract with Ansible.
        (Path(tmp) / "__main__.py").write_text(MAIN)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "wb") as fh:
            fh.write(LAUNCHER)
            zipapp.create_archive(Path(tmp), fh)
        out.chmod(0o755)
    return out
