"""Build-time checks of what would otherwise fail only on the targets, once the lock is known:
the install pip-args as the install tool's own parser reads them, and distro packages to symlink
whose Python names a locked distribution provides too; and what would differ silently: a
``python`` name that finds another interpreter here than on the targets' system PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

from .._log import logger
from .._process import child_env, run
from ..artifact.documents import VenvConfig, Wheel
from ..errors import InstallError, RecipeError, VenvshipError
from ..host.info import Interpreter, probe_python
from ..host.trust import SYSTEM_PATH, system_program
from ..recipe.recipefile import Recipe
from ..venvformat.symlinks import distro_python_minor, package_files, top_level_entries
from ..verify.tools import tool_wheel
from .layers import Tool

# pip's own parser for `pip install`, run from the artifact's pip wheel: it exits 2 with the
# reason on a bad option or value, as it would on every target.
_PIP_PARSE = """
import sys
sys.path.insert(0, sys.argv[1])
from pip._internal.commands import create_command
create_command("install").parse_args(sys.argv[2:])
"""


def check_install_args(recipe: Recipe, tool: Tool, *, python: str, workdir: Path) -> None:
    """Raise RecipeError (``venv.install.pip-args``) if the artifact's install tool refuses the
    recipe's install pip-args: pip's parser from its wheel, or uv's own, offline and dry.

    ``python``: the recipe's interpreter.

    Example: ``check_install_args(recipe, tool, python="/usr/bin/python3", workdir=w)``
    """
    args = list(recipe.install.pip_args)
    if not args:
        return
    if tool.name == "pip":
        argv: list[str | os.PathLike[str]] = [python, "-I", "-c", _PIP_PARSE, tool.wheel, *args]
        env = child_env({"PIP_CONFIG_FILE": os.devnull})
    else:
        empty = workdir / "no-requirements.txt"
        empty.parent.mkdir(parents=True, exist_ok=True)
        empty.write_text("")
        # uv asks the python it aims at about itself, running its site hooks: a venv of our own,
        # with nothing in it, never the builder venv (whose build requirements' .pth files run).
        venv = workdir / "empty-venv"
        shutil.rmtree(venv, ignore_errors=True)
        run([python, "-I", "-m", "venv", "--without-pip", venv], env=child_env({}), kind="venv")
        uv = _uv_binary(tool.wheel, workdir)
        argv = [
            uv,
            "pip",
            "install",
            "--dry-run",
            "--offline",
            "--no-index",
            "--python",
            venv / "bin" / "python",
        ]
        argv += [*args, "-r", empty]
        env = child_env({k: None for k in os.environ if k.startswith("UV_")} | {"UV_NO_CONFIG": "1"})
    proc = run(argv, env=env, check=False, kind="probe")
    if proc.returncode == 0:
        return
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    reason = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "")
    raise RecipeError(
        f"{recipe.path}: venv.install.pip-args",
        f"{tool.name} {tool.version} refuses {' '.join(args)!r}: {reason.removeprefix('error: ')}",
    )


def check_python_source(recipe: Recipe, interp: Interpreter) -> None:
    """Warn when ``recipe.python``, a bare name, is ``interp`` here but another interpreter (or
    none) on the system PATH, which is where venv-pull looks it up on every target.

    Example: ``check_python_source(recipe, probe_python(recipe.python))``
    """
    name = recipe.python
    if "/" in name:
        return  # a path means the same file on every host
    where = f"{recipe.path}: venv.python"
    here = f"{interp.path} (Python {interp.info.version})"
    system = system_program(name)
    if system is None:
        logger.warning(
            "%s: %s is %s on this build host, where targets look for it only on the system PATH "
            "(%s) and it is not there here: check the targets have it, or set venv.python to a path",
            where, name, here, ":".join(SYSTEM_PATH),
        )  # fmt: skip
        return
    if os.path.realpath(system) == os.path.realpath(interp.path):
        return
    try:
        theirs = f"{system} (Python {probe_python(system).info.version})"
    except VenvshipError:
        theirs = system
    logger.warning(
        "%s: %s is %s on this build host, but targets take the one on the system PATH, which here is "
        "%s: the venvs would run on another interpreter than they were built with; set "
        "venv.python = %s, or build with the system's %s first on PATH",
        where, name, here, theirs, json.dumps(system), name,
    )  # fmt: skip


def check_from_wheels_tool(recipe: Recipe, config: VenvConfig) -> None:
    """Warn when ``venv-pull install --from-wheels`` would refuse the artifact's install tool (a
    pip or uv wheel venv-pull does not pin, as a global constraint on it makes): the target's own
    rule, found here rather than after the pull. The ready-to-run layers need no tool.

    Example: ``check_from_wheels_tool(recipe, config)``
    """
    try:
        tool_wheel(config, config.install_tool)
    except InstallError as exc:
        logger.warning(
            "%s: venv.install-tool: %s; targets installing it with --from-wheels refuse it without that "
            "option (pin the %s version venvship pins, or drop the constraint on it)",
            recipe.path, exc, config.install_tool,
        )  # fmt: skip


def _uv_binary(wheel: Path, workdir: Path) -> Path:
    """Return the uv program unpacked from its wheel into ``workdir``."""
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(".data/scripts/uv"))
        target = workdir / "uv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(zf.read(member))
    target.chmod(0o755)
    return target


def check_symlinks(recipe: Recipe, lock: Mapping[Wheel, Path], *, minor: int) -> None:
    """Raise RecipeError (``venv.symlink-system-packages``) if a distro package to symlink holds a
    top-level Python name a locked distribution installs too: the target could not link it.

    Distro packages not installed on this build host cannot be read: a warning says so.

    Example: ``check_symlinks(recipe, {wheel: path}, minor=11)``
    """
    where = f"{recipe.path}: venv.symlink-system-packages"
    locked: dict[str, Wheel] = {}
    for wheel, path in lock.items():
        for name in wheel_top_names(path):
            locked.setdefault(name, wheel)
    for package in recipe.symlink_system_packages:
        try:
            files = package_files(package)
            entries = top_level_entries(package, files, minor=minor, distro_minor=distro_python_minor())
        except InstallError as exc:
            if "is not installed" in str(exc) or "cannot list files" in str(exc):
                logger.warning(
                    "%s: distro package %r is not installed on this build host: its Python names "
                    "are not checked against the lock",
                    where,
                    package,
                )
                continue
            raise RecipeError(where, str(exc)) from exc
        clashes = sorted({n for n in _names(e.name for e in entries) if n in locked})
        if clashes:
            wheel = locked[clashes[0]]
            raise RecipeError(
                where,
                f"distro package {package!r} provides {', '.join(clashes)}, which the locked "
                f"{wheel.name} {wheel.version} installs too: drop one of them (the venv cannot hold both)",
            )


def wheel_top_names(wheel: Path) -> set[str]:
    """Return the top-level importable names a wheel installs (packages, modules, extensions)."""
    with zipfile.ZipFile(wheel) as zf:
        return _names(n.split("/", 1)[0] for n in zf.namelist())


def _names(entries: Iterable[str]) -> set[str]:
    """Return the module names of site-packages entries: ``six.py`` → ``six``, a package folder
    as it is, ``_x.cpython-311-x86_64-linux-gnu.so`` → ``_x``; metadata folders are left out."""
    out = set()
    for entry in entries:
        if entry.endswith((".dist-info", ".egg-info", ".data", ".pth")) or entry == "__pycache__":
            continue
        name = entry.split(".", 1)[0] if entry.endswith((".py", ".so", ".pyd")) else entry
        if name.isidentifier():
            out.add(name)
    return out
