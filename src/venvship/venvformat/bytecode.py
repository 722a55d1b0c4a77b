"""Bytecode compiled on all cores: for the ready-to-run layers on the build host, and for a
generation installed from wheels on a target.

Timestamp ``.pyc`` files, whatever SOURCE_DATE_EPOCH says: a layer's files all carry one mtime,
which the headers name, so they stay valid after unpacking; hash-checked ones would cost a
source read at every import. The source path each ``.pyc`` records is the one the file will have
(``final``), not where it is compiled (``staged``); importlib puts the real path in place anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .._log import logger
from .._process import ISOLATED_CWD, python_argv, run
from ..errors import InstallError


@dataclass(frozen=True)
class BytecodeResult:
    """How many ``.pyc`` files came with the layers, how many were compiled here."""

    reused: int
    compiled: int

    def to_json(self) -> dict[str, int]:
        return {"reused": self.reused, "compiled": self.compiled}


# Run by the host interpreter, never a venv's own python (an installed wheel may have replaced or
# configured that one), with ``-I -S``: nothing from the venv can shadow the stdlib here.
# Like ``compileall -j0`` with up-to-date pycs skipped, but the skip check runs in one process and
# only the files to compile go to the workers, in chunks: compileall hands every file to its pool
# one by one, which costs seconds on a large venv where most pycs were reused.
_COMPILE = r"""
import importlib.util, itertools, json, os, py_compile, struct, sys
root, staged, final = sys.argv[1:4]
valid = set(json.load(sys.stdin))  # given a valid pyc just now: no need to read it again
magic = importlib.util.MAGIC_NUMBER
todo = []
uptodate = 0
for top, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not os.path.islink(os.path.join(top, d)))
    for name in sorted(files):
        if not name.endswith(".py"):
            continue
        src = os.path.join(top, name)
        if src in valid:
            continue
        try:
            st = os.stat(src)
            with open(importlib.util.cache_from_source(src), "rb") as fh:
                head = fh.read(16)
            if head == magic + struct.pack("<III", 0, int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF):
                uptodate += 1
                continue
        except OSError:
            pass
        todo.append(src)
try:
    cores = len(os.sched_getaffinity(0))
except AttributeError:
    cores = os.cpu_count() or 1
workers = min(cores, len(todo) // 32)
args = (
    todo,
    itertools.repeat(None),
    [final + src[len(staged):] for src in todo],  # the path the pyc records: the final generation's
    itertools.repeat(False),
    itertools.repeat(-1),
    itertools.repeat(py_compile.PycInvalidationMode.TIMESTAMP),
    itertools.repeat(1),
)
if workers > 1:
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(py_compile.compile, *args, chunksize=max(1, len(todo) // (workers * 8))))
else:
    done = list(map(py_compile.compile, *args))
sys.stdout.flush()
print(json.dumps({"compiled": len(todo), "failed": done.count(None), "uptodate": uptodate}))
"""


def compile_bytecode(
    python: Path, folder: Path, *, staged: Path, final: Path, env: Mapping[str, str]
) -> tuple[int, int]:
    """Compile the ``.py`` files of ``folder`` that lack a valid ``.pyc``, on all cores.

    Returns how many were compiled, and how many had a valid ``.pyc`` already.

    ``python``: on a target, the host interpreter the venv was made with, never the venv's own
    ``bin/python`` (which the installed wheels may have written).

    Example: ``compile_bytecode(Path("/usr/bin/python3.11"), site, staged=venv, final=final, env=env)``
    """
    argv = python_argv(python, "-c", _COMPILE, folder, staged, final, site=False)
    proc = run(argv, env=env, cwd=ISOLATED_CWD, check=False, stdin="[]", kind="compile")
    lines = proc.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1])
        compiled, failed, uptodate = (int(summary[k]) for k in ("compiled", "failed", "uptodate"))
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise InstallError(f"compiling bytecode in {folder} failed:\n{proc.stdout[-3000:]}") from exc
    if failed or proc.returncode != 0:
        # Like pip, tolerate files that do not compile (tests, py2 leftovers): they just run uncompiled.
        logger.warning("%d files did not compile (ignored):\n%s", failed, "\n".join(lines[:-1])[-1500:])
    return compiled, uptodate
