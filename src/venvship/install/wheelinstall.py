"""``venv-pull install --from-wheels``: the offline install of a lock's wheels with pip or uv.

The artifact names its install tool, but it never chooses what runs: a tool wheel runs only when
its sha256 is one venv-pull pins (:data:`PINNED`) or the operator allows (``--allow-tool``), and
only after its cached blob hashed to it again. It is unpacked into the run's own private work
folder, never into a shared one. The install pip-args pass an allow-list (pipargs.py).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Mapping, Protocol, Sequence

from .._process import ISOLATED_CWD, python_argv, run
from ..artifact import VenvConfig, Wheel
from ..errors import InstallError, ProcessError
from ..oci.layout import Layout
from .pull import check_wheel

# The pip and uv wheels venvship pins (builder/pins.py), by sha256, as PyPI publishes them.
PINNED: Mapping[str, str] = {
    "f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13": "pip-26.3-py3-none-any.whl",
    "bdb1b08f4274833d62c1aa29e20907365a2ceb950410df15fc9521bad440122b": "pip-26.0.1-py3-none-any.whl",
    "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19": "uv-0.13.9 manylinux_2_17_x86_64",
    "2c45530751517d6c3bbc69a19473f6effe47cce047bede01ffd8af7ea7b36b25": "uv-0.13.9 musllinux_1_1_x86_64",
    "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe": "uv-0.13.9 manylinux_2_17_aarch64",
    "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375": "uv-0.13.9 manylinux_2_28_aarch64",
    "c5dbdb7c8737cd183a9dce95b39cfd1f3d54ec2a27a1bb58f160293f9ba2c805": "uv-0.13.9 manylinux_2_17_ppc64le",
    "a6e845f387e4ed55bb59342957a9179e24a631fcc7668bda3426ae1cef8ed4b9": "uv-0.13.9 manylinux_2_17_s390x",
    "6b0c7b9f47a5d011939d61e324d3fe18a8bc155d8dd53add738709a92f290a7c": "uv-0.13.9 manylinux_2_31_riscv64",
    "16963d19594e18d746a70c7fce82237bde4f2cac4cfcf0ca2b84796fe9d0c6e9": "uv-0.13.9 manylinux_2_17_armv7l",
}


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


def tool_wheel(config: VenvConfig, name: str, *, allowed: Collection[str] = ()) -> Wheel:
    """Return the artifact's ``name`` wheel if venv-pull may run it (pinned, or in ``allowed``)."""
    wheel = next((w for w in config.tools if w.name.lower() == name), None)
    if wheel is None:
        raise InstallError(f"artifact {config.name} {config.version}: no {name} wheel among its tools")
    if wheel.sha256 not in PINNED and wheel.sha256 not in allowed:
        raise InstallError(
            f"artifact {config.name} {config.version}: its {wheel.filename} (sha256:{wheel.sha256}) is "
            "not a tool venv-pull pins; allow it with --allow-tool sha256:<hex> if you trust it"
        )
    return wheel


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
            "--no-compile",  # compiled after, on all cores (bytecode.py)
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
