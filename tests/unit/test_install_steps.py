"""``venv-pull install`` reads as its steps (docs/explanation.md, "The code"): one short function
calling plan → fetch → stage → check → switch → record, each step a module with its entry point."""

from __future__ import annotations

import ast
from pathlib import Path

INSTALL = Path(__file__).resolve().parents[2] / "src" / "venvship" / "install"
STEPS = [
    ("plan", "open_plan"),
    ("plan", "locked"),
    ("fetch", "fetch"),
    ("staging", "stage"),
    ("check", "check"),
    ("switch", "switch"),
    ("recording", "record"),
]


def _install_function() -> ast.FunctionDef:
    tree = ast.parse((INSTALL / "installer.py").read_text())
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "install")


def _calls(fn: ast.FunctionDef) -> list[str]:
    """Return the names called in ``fn`` in the order they return (an argument's call first)."""
    calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return [c.func.id for c in sorted(calls, key=lambda c: (c.end_lineno, c.end_col_offset))]  # type: ignore[attr-defined]


def test_install_calls_the_steps_in_order() -> None:
    calls = iter(_calls(_install_function()))
    # Each step found after the one before it (``in`` on an iterator consumes it up to the match).
    assert all(entry in calls for _, entry in STEPS), _calls(_install_function())


def test_install_is_short() -> None:
    fn = _install_function()
    assert fn.end_lineno is not None and fn.end_lineno - fn.lineno < 35


def test_each_step_is_a_module_with_its_entry_point() -> None:
    for module, entry in STEPS:
        tree = ast.parse((INSTALL / f"{module}.py").read_text())
        assert entry in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, (module, entry)
