"""The import check before the switch: real failures stop the install, imports that disturb each other do not."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.needs import needs
from tests.processes import running, sleep_marker

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels, make_wheel


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


def test_a_module_needing_what_only_its_server_provides_is_skipped(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # Like uWSGI's uwsgidecorators, which imports the uwsgi module only the server embeds.
    hosted = make_wheel(
        tmp_path,
        "hosted",
        "1.0",
        extra={
            "hosted_decorators.py": "import hosted_server_only\n",
            "hosted-1.0.dist-info/top_level.txt": "hosted\nhosted_decorators\n",
        },
    )
    pip = next(wheels.tools.glob("pip-*.whl"))
    proc = pull("install", artifacts.write([hosted, pip]))
    assert "skipped hosted_decorators: it needs hosted_server_only" in proc.stderr
    assert pull.python("import hosted; print(hosted.VERSION)") == "1.0"


def test_a_missing_module_of_the_venv_itself_still_fails(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # top_level.txt promises a module the wheel does not hold: a broken distribution.
    ghost = make_wheel(
        tmp_path,
        "ghost",
        "1.0",
        body="import ghostpart",
        extra={"ghost-1.0.dist-info/top_level.txt": "ghost\nghostpart\n"},
    )
    pip = next(wheels.tools.glob("pip-*.whl"))
    proc = pull("install", artifacts.write([ghost, pip]), ok=False)
    assert proc.returncode == 1
    assert "cannot import ghost" in proc.stderr and "No module named 'ghostpart'" in proc.stderr


def test_a_hung_check_is_killed_and_its_generation_discarded(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    pull.install(artifacts.write([wheels.demo1]))
    ref2 = artifacts.write([wheels.demo2], version="2.0")
    sleep = sleep_marker()
    hang = f"{sleep} & {sleep}"  # a check that never ends, and a child it left behind
    start = time.monotonic()
    proc = pull("install", ref2, "--check-command", hang, env={"VENVSHIP_TIMEOUT_HEALTH": "1"}, ok=False)
    assert proc.returncode == 1 and time.monotonic() - start < 60
    assert proc.stderr.splitlines()[-1] == (
        "venv-pull: error: the health check (sh) was killed after 1s, its time limit; "
        "set VENVSHIP_TIMEOUT_HEALTH to more seconds (0: no limit) to allow longer"
    )
    assert "Traceback" not in proc.stderr
    assert running(sleep) == []
    root = pull.dest.parent / ".demo.venvship"
    assert not [p for p in root.iterdir() if p.name.endswith(".partial")]
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"  # the live venv is untouched


def test_a_thread_an_import_leaves_running_does_not_hold_the_check(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # A package that starts a worker thread on import (not a daemon thread): the check ends when
    # its own work does, without waiting for the thread, which would run until the time limit.
    body = "import threading\nthreading.Thread(target=threading.Event().wait).start()\n"
    busy = make_wheel(tmp_path / "w", "busy", "1.0", body=body)
    start = time.monotonic()
    result = pull.install(artifacts.write([busy]), env={"VENVSHIP_TIMEOUT_HEALTH": "60"})
    assert result["changed"] is True
    assert time.monotonic() - start < 45


def test_an_import_that_takes_stdout_away_neither_fails_the_check_nor_hides_its_report(
    artifacts: Artifacts, pull: Pull, tmp_path: Path
) -> None:
    quiet = make_wheel(tmp_path / "w", "quiet", "1.0", body="import sys\nsys.stdout = None\n")
    proc = pull("install", artifacts.write([quiet]), "-v")
    assert "health check: 1 packages imported, 0 console script modules found" in proc.stderr


# The extension module of the tests below: a module that calls into libvsgone, a shared library
# that exists only where the extension was built.
_EXT_C = r"""
#include <Python.h>
extern int vsgone_answer(void);
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__ext(void) {
    PyObject *m = PyModule_Create(&def);
    if (m) PyModule_AddIntConstant(m, "ANSWER", vsgone_answer());
    return m;
}
"""


def _extension(work: Path, *, linked: bool) -> bytes:
    """Return an extension module ``_ext`` for the distro's python, ``linked``: against
    libvsgone.so, which is then removed (the host lacks it), else standing alone."""
    work.mkdir(parents=True, exist_ok=True)
    include = subprocess.run(
        [DISTRO_PYTHON, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    source = _EXT_C if linked else _EXT_C.replace("vsgone_answer()", "42")
    (work / "ext.c").write_text(source)
    libs: list[str] = []
    if linked:
        (work / "gone.c").write_text("int vsgone_answer(void) { return 42; }\n")
        subprocess.run(
            ["cc", "-shared", "-fPIC", "-o", str(work / "libvsgone.so"), str(work / "gone.c")], check=True
        )
        libs = [f"-L{work}", "-Wl,--no-as-needed", "-lvsgone"]
    out = work / "_ext.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", f"-I{include}", "-o", str(out), str(work / "ext.c"), *libs], check=True
    )
    (work / "libvsgone.so").unlink(missing_ok=True)
    return out.read_bytes()


def _ext_suffix() -> str:
    return subprocess.run(
        [DISTRO_PYTHON, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


needs_cc = needs(shutil.which("cc") is not None, "the system C compiler", fix="apt-get install gcc")


# The check loads the extension modules the layers' files name (no folder read), or those it finds
# walking site-packages when an install tool laid the files out.
LAYOUTS = pytest.mark.parametrize("layout", [(), ("--from-wheels",)], ids=["layers", "from-wheels"])


@needs_cc
@LAYOUTS
def test_an_extension_module_missing_its_shared_library_fails_before_the_switch(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path, layout: tuple[str, ...]
) -> None:
    # A dependency nothing imports at install time: only loading every extension module finds
    # that this host lacks the library it links against.
    pull.install(artifacts.write([wheels.demo1]), *layout)
    gone = make_wheel(
        tmp_path / "w",
        "gonedep",
        "1.0",
        extra={f"gonedep/_ext{_ext_suffix()}": _extension(tmp_path / "cc", linked=True)},
    )
    ref2 = artifacts.write([wheels.demo2, gone], version="2.0", requirements=["demo"])
    proc = pull("install", ref2, *layout, ok=False)
    assert proc.returncode == 1
    assert "cannot load extension module gonedep._ext:" in proc.stderr
    assert "libvsgone.so: cannot open shared object file" in proc.stderr
    assert "Traceback" not in proc.stderr
    root = pull.dest.parent / ".demo.venvship"
    assert not [p for p in root.iterdir() if p.name.endswith(".partial")]
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"  # the live venv is untouched


@needs_cc
def test_extension_modules_that_load_pass_and_are_counted(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    fine = make_wheel(
        tmp_path / "w",
        "finedep",
        "1.0",
        extra={
            f"finedep/_ext{_ext_suffix()}": _extension(tmp_path / "cc", linked=False),
            # A vendored library beside a package is no module: loaded only by what needs it.
            "finedep.libs/libvsgone.so": b"not an ELF file",
        },
    )
    proc = pull("install", artifacts.write([wheels.demo1, fine], requirements=["demo"]), "-v")
    assert (
        "health check: 1 packages imported, 0 console script modules found, 1 extension modules loaded ("
        in (proc.stderr)
    )
    assert pull.python("import finedep._ext as e; print(e.ANSWER)") == "42"


@LAYOUTS
def test_an_extension_module_built_for_another_python_fails(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path, layout: tuple[str, ...]
) -> None:
    # The ABI tag names another interpreter: this one would never import it.
    other = make_wheel(
        tmp_path / "w", "olddep", "1.0", extra={"olddep/_ext.cpython-27-x86_64-linux-gnu.so": b"\x7fELF"}
    )
    ref = artifacts.write([wheels.demo1, other], requirements=["demo"])
    proc = pull("install", ref, *layout, ok=False)
    assert proc.returncode == 1
    assert "cannot load extension module olddep._ext:" in proc.stderr
    assert "_ext.cpython-27-x86_64-linux-gnu.so is built for another Python" in proc.stderr
    assert not os.path.lexists(pull.dest)


def test_a_console_script_whose_module_is_missing_fails(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    tool = make_wheel(
        tmp_path / "w",
        "tool",
        "1.0",
        extra={"tool-1.0.dist-info/entry_points.txt": "[console_scripts]\ntool = tool.cli:main\n"},
    )
    proc = pull("install", artifacts.write([tool]), ok=False)
    assert proc.returncode == 1
    assert "cannot find tool.cli:" in proc.stderr
    assert not os.path.lexists(pull.dest)


def test_without_bytecode_the_check_reads_the_stores_bytecode(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    # The check as nobody cannot write bytecode; compiling every module it imports in memory made
    # it cost seconds more with --no-compile. It reads the layers' bytecode from the store instead,
    # and the venv still gets none.
    probe = make_wheel(tmp_path / "w", "probe", "1.0", body="print('cached-from:', __spec__.cached)")
    argv = pull.argv("install", artifacts.write([probe]), "--no-compile")
    proc = subprocess.run(
        [*argv[:3], "-v", *argv[3:]], env=pull.env(), capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    cached = next(
        line.split(" ", 1)[1] for line in proc.stderr.splitlines() if line.startswith("cached-from: ")
    )
    assert cached.startswith(f"{pull.cache}/unpacked/") and cached.endswith(".pyc") and os.path.isfile(cached)
    assert not list(pull.dest.resolve().rglob("*.pyc"))
