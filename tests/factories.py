"""Tiny packages made by the tests themselves: pure, with a C extension, or in a local git repo."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def make_project(
    root: Path,
    name: str,
    version: str = "1.0",
    *,
    deps: list[str] | None = None,
    c_extension: bool = False,
    payload: int = 0,
) -> Path:
    """Write a setuptools project ``name`` under ``root`` and return its folder.

    The import name is ``name`` with dashes as underscores. With ``c_extension`` the package
    holds a compiled module ``_speed`` with ``add(a, b)``; ``payload``: bytes of random data in
    ``data.bin`` (no compression shrinks them), for transfers big enough to cut in the middle.
    """
    mod = name.replace("-", "_")
    proj = root / f"{name}-{version}-src"
    (proj / mod).mkdir(parents=True, exist_ok=True)
    (proj / mod / "__init__.py").write_text(f"__version__ = {version!r}\n")
    if payload:
        import os

        (proj / mod / "data.bin").write_bytes(os.urandom(payload))
    ext = ""
    if c_extension:
        (proj / mod / "speed.c").write_text(
            textwrap.dedent(
                """
                #include <Python.h>
                static PyObject* add(PyObject* self, PyObject* args) {
                    long a, b;
                    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
                    return PyLong_FromLong(a + b);
                }
                static PyMethodDef M[] = {{"add", add, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
                static struct PyModuleDef D = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, M};
                PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&D); }
                """
            )
        )
        ext = f"ext_modules=[Extension({mod + '._speed'!r}, [{mod + '/speed.c'!r}])],"
    (proj / "setup.py").write_text(
        textwrap.dedent(
            f"""
            from setuptools import setup, Extension
            setup(name={name!r}, version={version!r}, packages=[{mod!r}],
                  package_data={{{mod!r}: ["data.bin"]}},
                  install_requires={deps or []!r}, {ext})
            """
        )
    )
    (proj / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    return proj


def make_sdist(project: Path, dest: Path) -> Path:
    """Build an sdist of ``project`` into ``dest`` (no isolation, no network) and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(dest), str(project)],
        check=True,
        capture_output=True,
    )
    return next(dest.glob(f"{project.name.rsplit('-', 2)[0].replace('-', '_')}-*.tar.gz"))


def git_repo(project: Path) -> str:
    """Make ``project`` a git repository with one commit; return the commit SHA."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=project,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "init")
    return git("rev-parse", "HEAD")
