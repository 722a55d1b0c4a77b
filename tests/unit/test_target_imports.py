"""The target side imports nothing outside the standard library (DESIGN §2)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from venvship.install.zipapp import target_files

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "venvship"
BUILD_SIDE = (
    "venvship.builder",
    "venvship.recipe",
    "venvship.noxplugin",
    "venvship.cli.venvship_main",
)


def _module_name(rel: Path) -> str:
    parts = ["venvship", *rel.with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """Return (absolute name, lazy) for each import of ``path``; lazy: inside a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    lazy_nodes = {
        id(inner)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(fn)
    }
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
                names.append(target)
                if not node.module:
                    names += [f"{prefix}.{alias.name}" for alias in node.names]
            else:
                names.append(node.module or "")
        out += [(name, id(node) in lazy_nodes) for name in names]
    return out


TARGET = target_files(PACKAGE)
EXPECTED = {
    "errors.py",
    "_process.py",
    "_log.py",
    "_fsutil.py",
    "artifact/documents.py",
    "host/info.py",
    "host/distro.py",
    "cli/venv_pull_main.py",
    "install/installer.py",
    "oci/layout.py",
}


def test_target_set_covers_the_issue_list() -> None:
    assert {str(p) for p in TARGET} >= EXPECTED


def test_target_set_is_the_import_closure_of_venv_pull() -> None:
    """Derived from venv-pull's imports: what nothing on the target reaches stays out of the zipapp."""
    names = {str(p) for p in TARGET}
    assert not names & {
        "oci/publish.py",
        "install/zipapp.py",
        "recipe/recipefile.py",
        "noxplugin.py",
        "catalog/contents.py",
    }
    assert not any(n.startswith(("builder/", "recipe/", "catalog/", "local/")) for n in names)
    # A module venv-pull imports only inside a function is part of it too.
    assert {"install/maintenance.py", "oci/registry.py", "oci/auth.py"} <= names
    for rel in TARGET:  # every module's own package comes with it
        for folder in rel.parents:
            assert str(folder / "__init__.py") in names


@pytest.mark.parametrize("rel", TARGET, ids=str)
def test_target_module_imports_stdlib_only(rel: Path) -> None:
    module = _module_name(rel)
    bad = []
    for name, lazy in _imports(PACKAGE / rel, module):
        top = name.split(".")[0]
        if top == "venvship":
            # The package's lazy public API (``venvship.load_recipe``) may reach the build side
            # on first use; nothing on the target side may import it otherwise.
            if name.startswith(BUILD_SIDE) and not (lazy and rel == Path("__init__.py")):
                bad.append(f"{name} (build side)")
            elif (
                not (PACKAGE.parent / Path(*name.split("."))).with_suffix(".py").exists()
                and not (PACKAGE.parent / Path(*name.split("."))).is_dir()
                and not _is_attr(name)
            ):
                bad.append(f"{name} (unknown)")
        elif top not in sys.stdlib_module_names and top != "__future__":  # lazy or not
            bad.append(name)
    assert not bad, f"{rel} imports outside the stdlib: {bad}"


def _is_attr(name: str) -> bool:
    """``from .x import y`` where y is a name in module x, not a submodule."""
    parent = Path(*name.split(".")[:-1])
    return (PACKAGE.parent / parent).with_suffix(".py").exists() or (PACKAGE.parent / parent).is_dir()


def test_zipapp_runs_on_python39(tmp_path: Path) -> None:
    """Cheap smoke test here; the full install with the zipapp is an integration test."""
    import subprocess

    from tests.needs import require_python

    from venvship.install.zipapp import build_zipapp

    py39 = require_python("3.9")
    out = build_zipapp(tmp_path / "venv-pull.pyz")
    proc = subprocess.run([py39, out, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "install" in proc.stdout
    proc = subprocess.run([py39, out, "install"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
