"""Find an interpreter of a given version by name, as a developer's machine has them: on PATH, in
pyenv's versions, or among the pythons uv manages. Never a hard-coded home path."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Pythons other than the one running the tests, for one recipe built for several interpreters.
OTHER_PYTHONS = tuple(
    v for v in ("3.12", "3.13", "3.10", "3.11") if v != "{}.{}".format(*sys.version_info[:2])
)
# The interpreters the tests run besides their own: 3.9 is the target side's oldest Python, 3.8
# one the zipapp refuses, and a second Python for builds. ./noxw -s tests installs any missing one.
TEST_PYTHONS = ("3.8", "3.9", OTHER_PYTHONS[0])


def _candidates(version: str) -> list[Path]:
    name = f"python{version}"
    found = [Path(folder, name) for folder in os.environ.get("PATH", "").split(os.pathsep) if folder]
    # pyenv: PYENV_ROOT, the root its shims folder on PATH belongs to, then the default root.
    roots = [os.environ.get("PYENV_ROOT", "")]
    roots += [
        str(Path(f).parent) for f in os.environ.get("PATH", "").split(os.pathsep) if f.endswith("/shims")
    ]
    roots.append(str(Path("~/.pyenv").expanduser()))
    for root in filter(None, dict.fromkeys(roots)):
        found += sorted(Path(root, "versions").glob(f"{version}.*/bin/{name}"), reverse=True)
    uv = shutil.which("uv")
    if uv:
        proc = subprocess.run(
            [uv, "python", "find", "--no-python-downloads", version],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if proc.returncode == 0 and proc.stdout.strip():
            found.append(Path(proc.stdout.strip()))
    return found


@functools.cache
def find_python(version: str) -> Path | None:
    """Return a working interpreter of ``version`` (``"3.9"``), or None if this machine has none.

    A pyenv shim on PATH for a version that is not selected fails to run: it is skipped.
    """
    for path in _candidates(version):
        if not path.exists():
            continue
        try:
            proc = subprocess.run(
                [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
        except OSError:
            continue
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return path
    return None
