"""The import check before the switch: real failures stop the install, imports that disturb each other do not."""

from __future__ import annotations

from .conftest import Artifacts, Pull, Wheels


def test_modules_that_disturb_each_other_pass(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    # Imported in one interpreter, pip (first) switches setuptools' distutils shim off and
    # setuptools then fails its own check; each imports fine on its own.
    pip, setuptools = (next(wheels.tools.glob(f"{name}-*.whl")) for name in ("pip", "setuptools"))
    result = pull.install(artifacts.write([wheels.demo1, pip, setuptools]))
    assert result["changed"] is True
    assert pull.python("import setuptools, pip; print('ok')") == "ok"


def test_a_module_that_fails_alone_still_fails(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    pip = next(wheels.tools.glob("pip-*.whl"))
    proc = pull("install", artifacts.write([wheels.broken, pip]), ok=False)
    assert proc.returncode == 1
    assert "cannot import broken:" in proc.stderr and "broken on purpose" in proc.stderr
    assert "cannot import pip" not in proc.stderr
