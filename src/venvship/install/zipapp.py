"""Build ``venv-pull.pyz``: the target modules only, runnable by any Python 3.9+ (stdlib ``zipapp``)."""

from __future__ import annotations

import shutil
import tempfile
import zipapp
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent

# The target side (DESIGN §2): stdlib only. tests/unit/test_target_imports.py enforces it.
TARGET_MODULES = (
    "__init__.py",
    "errors.py",
    "_process.py",
    "_log.py",
    "_fsutil.py",
    "artifact.py",
    "jsondoc.py",
    "venvconfig.py",
    "destinations.py",
    "pipargs.py",
    "hostinfo.py",
    "distro.py",
    "oci/*.py",
    "install/*.py",
    "cli/__init__.py",
    "cli/install_args.py",
    "cli/outcome.py",
    "cli/venv_pull_main.py",
)


def target_files(package: Path = PACKAGE) -> list[Path]:
    """Return the target-side source files of the package, relative to it."""
    files: set[Path] = set()
    for pattern in TARGET_MODULES:
        files.update(p.relative_to(package) for p in package.glob(pattern))
    return sorted(files)


def build_zipapp(out: Path) -> Path:
    """Write ``out`` (e.g. ``dist/venv-pull.pyz``) holding only the target modules; return it.

    Example: ``build_zipapp(Path("dist/venv-pull.pyz"))``
    """
    with tempfile.TemporaryDirectory(prefix="venv-pull-zipapp-") as tmp:
        tree = Path(tmp) / "venvship"
        for rel in target_files():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PACKAGE / rel, tree / rel)
        for folder in (tree, tree / "oci", tree / "install", tree / "cli"):
            init = folder / "__init__.py"
            if not init.exists():
                init.write_text('"""venvship (venv-pull zipapp)."""\n')
        # Our own __main__ instead of create_archive(main=...): zipapp's generated one drops
        # main()'s return value, and venv-pull's exit code is its contract with Ansible.
        (Path(tmp) / "__main__.py").write_text(
            "import sys\nfrom venvship.cli.venv_pull_main import main\nsys.exit(main())\n"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(Path(tmp), out, interpreter="/usr/bin/env python3")
    return out
