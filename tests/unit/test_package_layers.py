"""Which package may import which (docs/explanation.md, "Architecture"): no arrow from a lower stage
into a higher one, and the stdlib-only packages import nothing else."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "venvship"

# The foundation every part may import: the exception tree and the small helpers.
FOUNDATION = {"errors", "_log", "_process", "_fsutil", "_text", "_units", "redact"}
# part → the parts it may import (besides itself and the foundation). Stages below come first.
ALLOWED: dict[str, set[str]] = {
    "artifact": set(),
    "host": {"artifact"},
    "venvformat": {"artifact", "host"},
    "oci": {"artifact", "host"},
    "verify": {"artifact", "host", "oci"},
    "recipe": {"artifact"},
    "builder": {"artifact", "host", "venvformat", "oci", "verify", "recipe"},
    "install": {"artifact", "host", "venvformat", "oci", "verify"},
    "catalog": {
        "artifact",
        "oci",
        "recipe",
    },  # export writes a pylock.toml with the recipe side's TOML writer
    "local": {"artifact", "host", "oci", "recipe", "builder", "install"},
    "noxplugin": {"oci", "builder"},
    "cli": {"artifact", "host", "oci", "verify", "recipe", "builder", "install", "catalog", "local"},
}
# Parts that run on the target's bare Python: the standard library and each other only.
STDLIB_ONLY = {"artifact", "host", "venvformat", "oci", "verify", "install", *FOUNDATION}


def _part(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(rel: Path, source: str) -> list[tuple[int, str]]:
    """Return (line, absolute module) for each import in ``rel``, at its top or inside functions."""
    parts = ["venvship", *rel.with_suffix("").parts]
    package = parts if rel.name == "__init__.py" else parts[:-1]
    if rel.name == "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(ast.parse(source, filename=str(rel))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
                if not node.module:  # ``from .. import host``: the names are parts
                    out += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
                    continue
            else:
                module = node.module or ""
            out.append((node.lineno, module))
    return out


def _violations(rel: Path, source: str | None = None) -> list[str]:
    part = _part(rel)
    allowed = ALLOWED.get(part, set()) | FOUNDATION | {part}
    bad = []
    text = (PACKAGE / rel).read_text() if source is None else source
    for line, name in _imports(rel, text):
        top, *rest = name.split(".")
        if top == "venvship":
            target = rest[0] if rest else ""
            if target in {"", "__version__"} or target in allowed:
                continue
            bad.append(f"{rel}:{line} imports venvship.{'.'.join(rest)} ({part} may not import {target})")
        elif part in STDLIB_ONLY and top not in sys.stdlib_module_names and top != "__future__":
            bad.append(f"{rel}:{line} imports {name} ({part} is stdlib only)")
    return bad


FILES = sorted(
    p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
)


def test_every_part_is_named() -> None:
    """A new package or loose module needs its place in the table above (and in the docs)."""
    assert {_part(rel) for rel in FILES} <= set(ALLOWED) | FOUNDATION


@pytest.mark.parametrize("rel", FILES, ids=str)
def test_imports_point_down(rel: Path) -> None:
    assert not _violations(rel)


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("builder/layers.py", "from ..install.installer import install\n"),
        ("builder/layers.py", "def f():\n    from venvship.cli import outcome\n"),
        ("install/installer.py", "from .. import recipe\n"),
        ("oci/layout.py", "from ..verify.select import select\n"),
        ("venvformat/record.py", "import packaging.tags\n"),
    ],
)
def test_the_rule_sees_a_wrong_import(rel: str, source: str) -> None:
    """The check itself: an upward import, lazy or not, and a non-stdlib import on the target side."""
    assert _violations(Path(rel), source)
