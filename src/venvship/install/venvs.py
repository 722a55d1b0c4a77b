"""Venv creation: the interpreter's own ``venv``, the environment its children get, and moving the
paths a venv names from its staging folder to its final one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from .._process import child_env, run
from ..distro import CA_BUNDLE
from ..errors import InstallError
from ..hostinfo import distro_family
from .record import fix_records, replace_file
from .venvfiles import site_rel


def site_packages(venv: Path) -> Path:
    """Return the venv's ``lib/python3.X/site-packages``, as its pyvenv.cfg names it (never a
    glob's first match: an artifact may ship a ``lib/python3.1/site-packages`` decoy)."""
    return venv / site_rel(venv)


def create_venv(python: str, venv: Path, *, prompt: str) -> None:
    """Make a venv without pip at ``venv``; fall back to virtualenv where ``venv`` is missing.

    ``prompt``: what activate shows; without it, the staging folder's name would be shown.
    """
    env = install_env({}, privileged=True)
    argv: list[str | os.PathLike[str]] = [python, "-m", "venv", "--without-pip", "--prompt", prompt, venv]
    proc = run(argv, env=env, check=False, kind="venv")
    if proc.returncode == 0:
        return
    if run([python, "-c", "import virtualenv"], env=env, check=False, kind="probe").returncode == 0:
        # --no-seed: no pip, setuptools or wheel (--no-wheel is deprecated, soon an error).
        run([python, "-m", "virtualenv", "--no-seed", "--prompt", prompt, venv], env=env, kind="venv")
        return
    raise InstallError(
        f"{python}: cannot make a venv (no venv module, no virtualenv):\n{proc.stdout[-1500:]}"
    )


# The artifact's install env reaches children that run as this process's user (root) only for
# these keys: an artifact's LD_PRELOAD, PYTHONPATH or PATH would choose what root runs.
PRIVILEGED_ENV = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "LANG",
        "LC_ALL",
        "TZ",
    }
)


def install_env(recipe_env: Mapping[str, str], *, privileged: bool) -> dict[str, str]:
    """Return the environment for install children, built on purpose from this process's.

    ``privileged``: for children that run as this process's user (the venv, pip or uv, bytecode),
    which get only the :data:`PRIVILEGED_ENV` keys of ``recipe_env``; the health check, which runs
    the artifact's own code unprivileged, gets all of it.
    """
    changes: dict[str, str | None] = {}
    for key in os.environ:
        # Host pip/uv settings (/etc/pip.conf extras, PIP_FIND_LINKS, UV_INDEX_URL ...) must not
        # leak into an offline, hash-pinned install; the recipe's own env is applied below.
        if key.startswith(("PIP_", "UV_")):
            changes[key] = None
    changes.update(
        {
            "PIP_CONFIG_FILE": os.devnull,  # ignore /etc/pip.conf and user config files
            "UV_NO_CONFIG": "1",  # likewise for uv.toml
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",  # offline: never ask PyPI
            "PYTHONPATH": None,  # would leak host packages into the new venv
            "PYTHONHOME": None,
            "PYTHONDONTWRITEBYTECODE": None,  # bytecode is compiled on purpose, see bytecode.py
            "VIRTUAL_ENV": None,
        }
    )
    ca = CA_BUNDLE.get(distro_family())
    if ca and os.path.exists(ca):
        # Only used if a recipe's pip-args reach the network; default to the distro's CAs.
        changes["REQUESTS_CA_BUNDLE"] = os.environ.get("REQUESTS_CA_BUNDLE", ca)
        changes["SSL_CERT_FILE"] = os.environ.get("SSL_CERT_FILE", ca)
    changes.update({k: v for k, v in recipe_env.items() if not privileged or k in PRIVILEGED_ENV})
    return child_env(changes)


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
