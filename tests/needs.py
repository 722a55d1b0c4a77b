"""What a test needs from the machine (an interpreter, a tool, a privilege), said in one place.

Locally a test whose need is missing is skipped with a reason that names what to install. Under
``CI=true`` no test may skip: tests/conftest.py turns every skip into a failure with that reason,
except tests marked ``may_skip`` (opt-in runs such as the PyPI tutorial). A CI machine that lacks
something therefore fails and says what to install, instead of passing with the test unrun.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .pythons import TEST_PYTHONS, find_python

CI = os.environ.get("CI", "").lower() == "true"
ROOT = os.geteuid() == 0


def require(ok: bool, what: str, *, fix: str) -> None:
    """Skip the running test (a failure under ``CI=true``) unless ``ok``; ``fix`` says how to get ``what``.

    Example: ``require(shutil.which("skopeo") is not None, "skopeo", fix="apt-get install skopeo")``
    """
    if not ok:
        pytest.skip(f"needs {what}: {fix}")


def needs(ok: bool, what: str, *, fix: str) -> pytest.MarkDecorator:
    """The marker form of :func:`require`, for a test, a class or a module's ``pytestmark``."""
    return pytest.mark.skipif(not ok, reason=f"needs {what}: {fix}")


def require_python(version: str) -> Path:
    """Return an interpreter of ``version`` (``"3.9"``); skip (fail under CI) when there is none."""
    path = find_python(version)
    require(
        path is not None,
        f"python{version}",
        fix=f"put python{version} on PATH (`uv python install {version}`, or pyenv); "
        + ("`./noxw -s tests` installs it itself" if version in TEST_PYTHONS else "no installer offers it"),
    )
    assert path is not None
    return path


def require_program(path: str, *, package: str) -> None:
    """Skip (fail under CI) unless the program ``path`` exists; ``package`` is its Debian package."""
    require(os.path.exists(path) or shutil.which(path) is not None, path, fix=f"apt-get install {package}")


needs_root = needs(ROOT, "root", fix="run the tests as root (sudo ./noxw -s tests)")
needs_nobody = needs(
    ROOT and shutil.which("setpriv") is not None,
    "root and setpriv, to run a step as nobody",
    fix="run the tests as root; apt-get install util-linux",
)
