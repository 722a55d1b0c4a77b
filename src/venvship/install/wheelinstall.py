"""``venv-pull install --from-wheels``: the offline install of a lock's wheels with pip or uv.

The artifact names its install tool, but it never chooses what runs: a tool wheel runs only when
its sha256 is one venv-pull pins (:data:`venvship.verify.tools.PINNED`) or the operator allows (``--allow-tool``), and
only after its cached blob hashed to it again. It is unpacked into the run's own private work
folder, never into a shared one. The install pip-args pass an allow-list (artifact/pipargs.py).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Mapping, Protocol, Sequence

from .._process import ISOLATED_CWD, python_argv, run
from ..artifact.documents import VenvConfig, Wheel
from ..errors import InstallError, ProcessError
from ..oci.layout import Layout
from ..verify.tools import tool_wheel
from .pull import check_wheel


@dataclass(frozen=True)
class InstallJob:
    """One offline install: the target venv, the wheel folder, the requirements file, a private work folder."""

    venv: Path
    find_links: Path
    requirements: Path
    pip_args: tuple[str, ...]
    env: Mapping[str, str]
    work: Path


class Installer(Protocol):
    """Installs a locked requirements file into a venv, offline."""

    name: str

    def version(self) -> str: ...

    def install(self, job: InstallJob) -> None: ...


def _unpacked(cache: Layout, wheel: Wheel, work: Path) -> Path:
    """Unpack the cached ``wheel`` into ``work`` after hashing its blob again; return the folder."""
    blob = cache.blob_path(wheel.digest)
    if not cache.verify_blob(wheel.digest, wheel.size):
        raise InstallError(f"{blob}: the cached {wheel.filename} does not hash to {wheel.digest}")
    check_wheel(blob, filename=wheel.filename)
    target = work / f"tool-{wheel.sha256[:12]}"
    with zipfile.ZipFile(blob) as zf:
        zf.extractall(target)
    return target


class _CarriedTool:
    """An install tool run from its wheel carried in the artifact (nothing needed on the host)."""

    def __init__(self, cache: Layout, wheel: Wheel) -> None:
        self.cache, self.wheel = cache, wheel

    def version(self) -> str:
        return self.wheel.version


class PipInstaller(_CarriedTool):
    """pip run from the pip wheel carried in the artifact (no pip needed on the host)."""

    name = "pip"

    def install(self, job: InstallJob) -> None:
        tool = _unpacked(self.cache, self.wheel, job.work)
        # The venv's bin/python is still the link `-m venv` made to the host interpreter: pip runs
        # before any of the artifact's wheels is unpacked, and nothing of the venv runs after it.
        # ``-I``: no PYTHON* variables, hence the pycache prefix as an option.
        argv = python_argv(
            job.venv / "bin" / "python",
            "-X",
            f"pycache_prefix={job.work / 'pycache'}",  # pip's own bytecode: the private work folder
            tool / "pip",  # runs as a script folder, as from the wheel
            "install",
            "--isolated",  # ignore PIP_* env and config files, whatever the caller sets
            "--no-input",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-index",
            "--find-links",
            job.find_links,
            "--require-hashes",
            "--no-deps",  # the lock is the full closure
            "--no-warn-conflicts",
            "--no-compile",  # compiled after, on all cores (venvformat/bytecode.py)
            *job.pip_args,
            "-r",
            job.requirements,
        )
        _run_install(argv, job, {})


class UvInstaller(_CarriedTool):
    """uv, unpacked from the uv wheel carried in the artifact."""

    name = "uv"

    def install(self, job: InstallJob) -> None:
        tool = _unpacked(self.cache, self.wheel, job.work)
        uv = next(tool.glob("*.data/scripts/uv"), None)
        if uv is None:
            raise InstallError(f"wheel {self.wheel.filename}: no .data/scripts/uv binary")
        uv.chmod(0o755)
        argv: list[str | os.PathLike[str]] = [
            uv,
            "pip",
            "install",
            "--python",  # asked before any of the artifact's wheels is unpacked (see PipInstaller)
            job.venv / "bin" / "python",
            "--offline",
            "--no-cache",  # leave no uv cache behind on the target
            "--no-index",
            "--find-links",
            job.find_links,
            "--require-hashes",
            "--no-deps",
            *job.pip_args,
            "-r",
            job.requirements,
        ]
        _run_install(argv, job, {})


def _run_install(argv: Sequence[str | os.PathLike[str]], job: InstallJob, extra: Mapping[str, str]) -> None:
    try:
        run(argv, env={**job.env, **extra}, cwd=ISOLATED_CWD, kind="install")
    except ProcessError as exc:
        raise InstallError(f"offline install into {job.venv} failed:\n{exc.output[-3000:]}") from exc


INSTALLERS: dict[str, Callable[[Layout, Wheel], Installer]] = {"pip": PipInstaller, "uv": UvInstaller}


def installer_for(config: VenvConfig, cache: Layout, *, allowed: Collection[str] = ()) -> Installer:
    """Return the installer the artifact asks for (``pip`` or ``uv``), if venv-pull may run its wheel."""
    kind = INSTALLERS.get(config.install_tool)
    if kind is None:
        raise InstallError(f"artifact {config.name}: unknown install tool {config.install_tool!r}")
    return kind(cache, tool_wheel(config, config.install_tool, allowed=allowed))


def requirements_text(lock: Sequence[Wheel]) -> str:
    """Return a hash-pinned requirements file: ``name==version --hash=sha256:...`` per lock entry."""
    return "".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in lock)
