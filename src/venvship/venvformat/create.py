"""Venv creation: the interpreter's own ``venv``, the environment its children get, and moving the
paths a venv names from its staging folder to its final one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from .._process import ISOLATED_CWD, PROXY_VARIABLES, SYSTEM_PATH, allowed_env, python_argv, run
from ..errors import InstallError
from ..host.distro import CA_BUNDLE
from ..host.info import distro_family
from .files import site_rel
from .record import fix_records, replace_file


def site_packages(venv: Path) -> Path:
    """Return the venv's ``lib/python3.X/site-packages``, as its pyvenv.cfg names it (never a
    glob's first match: an artifact may ship a ``lib/python3.1/site-packages`` decoy)."""
    return venv / site_rel(venv)


def create_venv(python: str, venv: Path, *, prompt: str) -> None:
    """Make a venv without pip at ``venv``; fall back to virtualenv where ``venv`` is missing.

    ``prompt``: what activate shows; without it, the staging folder's name would be shown.
    """
    env = install_env({}, privileged=True)
    argv = python_argv(python, "-m", "venv", "--without-pip", "--prompt", prompt, venv)
    proc = run(argv, env=env, cwd=ISOLATED_CWD, check=False, kind="venv")
    if proc.returncode == 0:
        return
    found = run(
        python_argv(python, "-c", "import virtualenv"), env=env, cwd=ISOLATED_CWD, check=False, kind="probe"
    )
    if found.returncode == 0:
        # --no-seed: no pip, setuptools or wheel (--no-wheel is deprecated, soon an error).
        argv = python_argv(python, "-m", "virtualenv", "--no-seed", "--prompt", prompt, venv)
        run(argv, env=env, cwd=ISOLATED_CWD, kind="venv")
        return
    raise InstallError(
        f"{python}: cannot make a venv (no venv module, no virtualenv):\n{proc.stdout[-1500:]}"
    )


_PROXIES = PROXY_VARIABLES

# The artifact's install env reaches children that run as this process's user (root) only for
# these keys: an artifact's LD_PRELOAD, PYTHONPATH or PATH would choose what root runs.
PRIVILEGED_ENV = _PROXIES | {"LANG", "LC_ALL", "TZ"}

# What root's own children (the venv, pip or uv, bytecode) keep of this process's environment
# besides PATH, LANG, LC_* and TZ: what a recipe's pip-args may need to reach an index.
_KEPT = _PROXIES | {"HOME", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"}


def install_env(recipe_env: Mapping[str, str], *, privileged: bool) -> dict[str, str]:
    """Return the environment for install children, built from an allow-list, never this process's
    whole environment (root's tokens and keys stay with root).

    ``privileged``: for children that run as this process's user (the venv, pip or uv, bytecode):
    the system PATH, locale, proxies and CA bundles, venvship's pip/uv settings, and only the
    :data:`PRIVILEGED_ENV` keys of ``recipe_env``. Otherwise, for the health check, which runs the
    artifact's own code unprivileged: PATH, LANG, LC_*, TZ and all of ``recipe_env``.
    """
    if not privileged:
        return allowed_env(recipe_env)
    env = allowed_env(keep=_KEPT)
    env["PATH"] = SYSTEM_PATH
    # Host pip/uv settings (/etc/pip.conf extras, PIP_FIND_LINKS, UV_INDEX_URL ...) never reach an
    # offline, hash-pinned install: PIP_* and UV_* are not on the allow-list, config files are off.
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,  # ignore /etc/pip.conf and user config files
            "UV_NO_CONFIG": "1",  # likewise for uv.toml
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",  # offline: never ask PyPI
        }
    )
    ca = CA_BUNDLE.get(distro_family())
    if ca and os.path.exists(ca):
        # Only used if a recipe's pip-args reach the network; default to the distro's CAs.
        env.setdefault("REQUESTS_CA_BUNDLE", ca)
        env.setdefault("SSL_CERT_FILE", ca)
    env.update({k: v for k, v in recipe_env.items() if k in PRIVILEGED_ENV})
    return env


def relocate(venv: Path, *, old: Path, new: Path) -> None:
    """Rewrite ``old`` to ``new`` in bin/ scripts and pyvenv.cfg, fixing RECORD hashes to match.

    Installers write absolute paths (shebangs, activate scripts); the generation is built under
    its ``.partial`` name and renamed once complete, so those paths must name the final folder.
    """
    before, after = os.fsencode(old), os.fsencode(new)
    changed: dict[Path, bytes] = {}
    candidates = [venv / "pyvenv.cfg", *sorted((venv / "bin").iterdir())]
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 4 << 20:
            continue
        data = path.read_bytes()
        if before not in data or b"\0" in data[:8192]:
            continue
        data = data.replace(before, after)
        replace_file(path, data, mode=path.stat().st_mode)
        changed[path] = data
    if changed:
        fix_records(site_packages(venv), changed)
