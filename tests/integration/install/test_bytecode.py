"""Bytecode on upgrade: unchanged files keep the previous generation's .pyc, the rest is compiled."""

from __future__ import annotations

import marshal
import os
import shutil
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
        out[str(pyc.relative_to(site))] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_unchanged_files_reuse_bytecode(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, shaky: Path, tool: str
) -> None:
    first = pull.install(artifacts.write([wheels.demo1, shaky], install_tool=tool))
    assert first["bytecode"] == {"reused": 0, "compiled": 2}
    second = pull.install(artifacts.write([wheels.demo2, shaky], version="2.0", install_tool=tool))
    assert second["bytecode"] == {"reused": 1, "compiled": 1}
    old, new = _gen(pull, first["generation"]), _gen(pull, second["generation"])
    old_site, new_site = _site(old), _site(new)

    # The unchanged package: the previous generation's pyc, byte for byte, still valid for the new source.
    reused = _pyc(new_site, "shaky")
    assert reused.read_bytes() == _pyc(old_site, "shaky").read_bytes()
    assert _co_filename(reused).startswith(str(old) + "/")  # compiled for the old generation...
    assert _valid_for(reused, new_site / "shaky" / "__init__.py")
    # The changed package: compiled afresh, for the final generation path (not the staging folder).
    fresh = _pyc(new_site, "demo")
    assert _co_filename(fresh) == str(new_site / "demo" / "__init__.py")
    assert _valid_for(fresh, new_site / "demo" / "__init__.py")

    # Importing with bytecode writes allowed rewrites nothing: every pyc is valid as it stands.
    before = _pycache_state(new_site)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    python = new / "bin" / "python"
    code = "import demo, shaky; print(demo.VERSION, shaky.fail.__code__.co_filename)"
    out = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    # ...yet importlib fixes the recorded path at load: the code names the new generation's file.
    assert out.stdout.split() == ["2.0", str(new_site / "shaky" / "__init__.py")]
    assert _pycache_state(new_site) == before
    proc = subprocess.run(
        [python, "-c", "import shaky; shaky.fail()"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "shaky failed" in proc.stderr
    assert f'File "{new_site / "shaky" / "__init__.py"}", line' in proc.stderr
    assert str(old) not in proc.stderr

    # pyc files are in no RECORD: verify does not flag them, and pip's uninstall still removes them.
    assert pull("verify", str(pull.dest)).returncode == 0
    pip = artifacts.tool("pip")[1]
    subprocess.run(
        [python, f"{pip}/pip", "uninstall", "--isolated", "--disable-pip-version-check", "-y", "shaky"],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert not (new_site / "shaky").exists()
    assert _pyc(old_site, "shaky").is_file()  # the previous generation keeps its own link


def test_edited_old_file_is_compiled_not_reused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, shaky: Path
) -> None:
    first = pull.install(artifacts.write([wheels.demo1, shaky]))
    old_site = _site(_gen(pull, first["generation"]))
    source = old_site / "shaky" / "__init__.py"
    # Same size, recompiled in place: the old pyc is valid for the edited file, not for the wheel's.
    source.write_text(source.read_text().replace("VERSION = '1.0'", "VERSION = '9.9'"))
    old_python = _gen(pull, first["generation"]) / "bin" / "python"
    subprocess.run([old_python, "-m", "compileall", "-q", "-f", source], check=True, timeout=60)
    assert _valid_for(_pyc(old_site, "shaky"), source)

    second = pull.install(artifacts.write([wheels.demo2, shaky], version="2.0"))
    assert second["bytecode"] == {"reused": 0, "compiled": 2}
    assert pull.python("import shaky; print(shaky.VERSION)") == "1.0"


def test_no_compile_and_rebuild(artifacts: Artifacts, wheels: Wheels, pull: Pull, shaky: Path) -> None:
    first = pull.install(artifacts.write([wheels.demo1, shaky]), "--no-compile")
    assert "bytecode" not in first
    assert not list(_site(_gen(pull, first["generation"])).rglob("*.pyc"))
    ref2 = artifacts.write([wheels.demo2, shaky], version="2.0")
    assert pull.install(ref2)["bytecode"] == {"reused": 0, "compiled": 2}  # nothing valid to reuse
    # --rebuild asks for a fresh generation: everything compiled again.
    rebuilt = pull.install(ref2, "--rebuild")
    assert rebuilt["bytecode"] == {"reused": 0, "compiled": 2}
    assert pull.install(ref2)["changed"] is False and "bytecode" not in pull.install(ref2)


def test_plain_directory_bytecode_is_reused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, shaky: Path, tmp_path: Path
) -> None:
    # A venv made elsewhere, copied (mtimes kept) to a plain directory at the destination, as the
    # original role leaves it. SOURCE_DATE_EPOCH would make compileall write hash-checked pycs,
    # which compileall never skips: the installer asks for timestamp pycs whatever it says.
    elsewhere = Pull(tmp=tmp_path, dest=tmp_path / "elsewhere" / "demo", cache=pull.cache, facts=pull.facts)
    elsewhere.install(artifacts.write([wheels.demo1, shaky]), env={"SOURCE_DATE_EPOCH": "1"})
    old_pyc = _pyc(_site(elsewhere.dest), "shaky")
    assert struct.unpack("<I", old_pyc.read_bytes()[4:8]) == (0,)  # flags 0: a timestamp pyc
    shutil.copytree(elsewhere.dest.resolve(), pull.dest, symlinks=True)

    result = pull.install(artifacts.write([wheels.demo2, shaky], version="2.0"))
    assert result["bytecode"] == {"reused": 1, "compiled": 1}
    assert _pyc(_site(pull.dest), "shaky").read_bytes() == old_pyc.read_bytes()
    assert list((pull.dest.parent / ".demo.venvship").glob("original-*/lib"))


def test_file_that_does_not_compile_is_tolerated(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # As pip does: a module that does not compile (a py2 leftover) stays uncompiled, the rest is not.
    legacy = make_wheel(tmp_path / "w", "legacy", "1.0", extra={"legacy/py2only.py": "print 'old'\n"})
    result = pull.install(artifacts.write([legacy]))
    assert result["changed"] is True and result["bytecode"] == {"reused": 0, "compiled": 2}
    pycache = _site(pull.dest) / "legacy" / "__pycache__"
    assert sorted(p.name for p in pycache.iterdir()) == [f"__init__.{TAG}.pyc"]
