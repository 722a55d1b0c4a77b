"""Bytecode: it comes with the ready-to-run layers, valid after unpacking; --no-compile leaves it out;
an install from wheels compiles it here."""

from __future__ import annotations

import marshal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Artifacts, Pull, Wheels, make_wheel

TAG = sys.implementation.cache_tag


@pytest.fixture(scope="module")
def shaky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package whose function raises, so a traceback shows which source path the code names."""
    out = tmp_path_factory.mktemp("shaky")
    return make_wheel(out, "shaky", "1.0", body="def fail():\n    raise RuntimeError('shaky failed')\n")


def _site(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def _gen(pull: Pull, generation: str) -> Path:
    return pull.dest.parent / ".demo.venvship" / generation


def _pyc(site: Path, package: str) -> Path:
    return site / package / "__pycache__" / f"__init__.{TAG}.pyc"


def _co_filename(pyc: Path) -> str:
    """Return the source path recorded inside ``pyc`` (before importlib fixes it up at load)."""
    code = marshal.loads(pyc.read_bytes()[16:])
    return str(code.co_filename)


def _valid_for(pyc: Path, source: Path) -> bool:
    """Return True if ``pyc`` is a timestamp pyc whose header matches ``source`` as importlib checks it."""
    import importlib.util

    st = source.stat()
    expected = importlib.util.MAGIC_NUMBER + struct.pack(
        "<III", 0, int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF
    )
    return pyc.read_bytes()[:16] == expected


def _pycache_state(site: Path) -> dict[str, tuple[int, int]]:
    """Return every file under a __pycache__ of ``site`` → (inode, mtime_ns): a rewrite changes both."""
    out = {}
    for pyc in site.rglob("__pycache__/*"):
        st = pyc.stat()
        out[str(pyc)] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_the_layers_bytecode_is_valid_after_unpacking(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, shaky: Path, tool: str
) -> None:
    result = pull.install(artifacts.write([wheels.demo2, shaky], install_tool=tool))
    site = _site(_gen(pull, result["generation"]))
    sources = sorted(site.rglob("*.py"))
    assert sources and result["bytecode"] == {"reused": len(sources), "compiled": 0}
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.{TAG}.pyc"
        assert _valid_for(pyc, source), pyc  # the layer's one mtime, in the file and in the header
    assert _co_filename(_pyc(site, "shaky")).startswith("/venvship-build-prefix/venv/")
    before = _pycache_state(site)
    # Python imports them as they are (it would rewrite a pyc it found stale) and tracebacks name
    # the real files: importlib puts the source path in place of the build host's.
    env = {"PATH": "/usr/bin:/bin"}
    python = str(_gen(pull, result["generation"]) / "bin" / "python")
    out = subprocess.run(
        [python, "-c", "import demo, shaky; print(demo.VERSION, shaky.fail.__code__.co_filename)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.split() == ["2.0", str(site / "shaky" / "__init__.py")]
    proc = subprocess.run(
        [python, "-c", "import shaky; shaky.fail()"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and f'File "{site / "shaky" / "__init__.py"}", line' in proc.stderr
    assert _pycache_state(site) == before


def test_no_compile_leaves_the_bytecode_out_and_rebuild_brings_it(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo2])
    first = pull.install(ref, "--no-compile")
    assert "bytecode" not in first
    site = _site(_gen(pull, first["generation"]))
    assert not list(site.rglob("*.pyc"))
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"
    assert not list(site.rglob("*.pyc"))  # the health check wrote none either
    again = pull.install(ref, "--rebuild")
    assert again["bytecode"]["reused"] > 0 and list(_site(_gen(pull, again["generation"])).rglob("*.pyc"))


def test_from_wheels_compiles_the_bytecode_here(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    result = pull.install(artifacts.write([wheels.demo2], layers=False), "--from-wheels")
    site = _site(_gen(pull, result["generation"]))
    sources = sorted(site.rglob("*.py"))
    assert result["bytecode"] == {"reused": 0, "compiled": len(sources)}
    for source in sources:
        assert _valid_for(source.parent / "__pycache__" / f"{source.stem}.{TAG}.pyc", source)


def test_file_that_does_not_compile_is_tolerated(artifacts: Artifacts, pull: Pull, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "legacy", "1.0", extra={"legacy/py2only.py": "print 'old'\n"})
    result = pull.install(artifacts.write([wheel]))
    site = _site(_gen(pull, result["generation"]))
    assert (site / "legacy" / "py2only.py").is_file()
    assert not list(site.rglob(f"py2only.{TAG}.pyc"))
    assert _valid_for(_pyc(site, "legacy"), site / "legacy" / "__init__.py")
