"""One generation's venv, made and checked in its staging folder (never the live one): the venv
skeleton, the distributions (unpacked from layers, or installed from wheels), the distro packages
to symlink, and the health check."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Collection, Iterator, Mapping

from ..artifact.documents import VenvConfig
from ..artifact.layerformat import LayerInfo
from ..errors import InstallError
from ..oci.layout import Layout
from ..venvformat.bytecode import BytecodeResult, compile_bytecode
from ..venvformat.create import create_venv, relocate, site_packages
from ..venvformat.symlinks import link_system_packages
from .faults import pause_point
from .generations import Generations
from .health import canonical_name, health_check, requested_names, top_level_modules
from .layerinstall import fill
from .pull import find_links
from .wheelinstall import InstallJob, installer_for, requirements_text


@dataclass(frozen=True)
class StageJob:
    """What making one generation needs (nothing of how the run was asked for beyond it)."""

    gens: Generations
    generation: str
    cache: Layout
    config: VenvConfig
    python: str  # the host interpreter that makes the venv (resolved by trust.host_python)
    env: Mapping[str, str]  # for the children that run as this process's user
    check_env: Mapping[str, str]  # for the health check (the artifact's own code)
    compile: bool = True
    from_wheels: bool = False
    allowed_tools: Collection[str] = ()
    check_command: str | None = None
    check_user: str | None = "nobody"
    on_layer: Callable[[LayerInfo], None] | None = None


@dataclass(frozen=True)
class Staged:
    """A generation made and checked under its staging name: its bytecode, its dist-info folders."""

    bytecode: BytecodeResult | None
    dist_infos: tuple[str, ...]
    tool: str  # what laid the files out: "layers", or the install tool and its version


def stage_generation(job: StageJob) -> Staged:
    """Make generation ``job.generation`` in its staging folder and check it; raise InstallError
    (the staging folder removed) when the venv cannot be made or fails its check."""
    staging, final = job.gens.stage(job.generation), job.gens.path(job.generation)
    try:
        create_venv(job.python, staging, prompt=job.gens.dest.name)  # as `python -m venv DEST` would
        pause_point("venv")
        site = site_packages(staging)
        if job.from_wheels:
            staged = _from_wheels(job, staging, final=final, site=site)
        else:
            filled = fill(
                job.config,
                job.cache,
                staging,
                final=final,
                compile=job.compile,
                site=site.relative_to(staging).as_posix(),
                on_layer=job.on_layer,
            )
            bytecode = BytecodeResult(reused=filled.pycs, compiled=0) if job.compile else None
            staged = Staged(bytecode=bytecode, dist_infos=(), tool="layers")
        pause_point("installed")
        # The skeleton (pyvenv.cfg, activate scripts) and an installer's scripts name the staging
        # folder: they must name the folder the generation gets once complete.
        relocate(staging, old=staging, new=final)
        _check(job, staging, site)
        infos = tuple(sorted(p.name for p in site.glob("*.dist-info") if not p.is_symlink()))
        return replace(staged, dist_infos=infos)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # discarded; the live venv was never touched
        raise


def _from_wheels(job: StageJob, staging: Path, *, final: Path, site: Path) -> Staged:
    """Install the lock's wheels with the artifact's pip or uv (if venv-pull may run it), then compile."""
    config = job.config
    installer = installer_for(config, job.cache, allowed=job.allowed_tools)
    with _workdir() as work:
        requirements = work / "requirements.txt"
        requirements.write_text(requirements_text(config.lock))
        installer.install(
            InstallJob(
                venv=staging,
                find_links=find_links(job.cache, config, work),
                requirements=requirements,
                pip_args=config.install_pip_args,
                env=job.env,
                work=work,
            )
        )
    bytecode = None
    if job.compile:
        # The host interpreter compiles: the venv's bin/ is what the wheels just wrote (a wheel's
        # scripts may replace bin/python or add a bin/python._pth), which root never runs.
        compiled, uptodate = compile_bytecode(
            Path(job.python), site, staged=staging, final=final, env=job.env
        )
        bytecode = BytecodeResult(reused=uptodate, compiled=compiled)
    return Staged(bytecode=bytecode, dist_infos=(), tool=f"{installer.name} {installer.version()}")


def _check(job: StageJob, staging: Path, site: Path) -> None:
    """Symlink the distro packages, then run the health check on the new generation."""
    config = job.config
    minor = int(site.parent.name.split(".")[1].rstrip("t"))
    linked = link_system_packages(config.symlink_system_packages, site=site, minor=minor)
    # The recipe's own packages are checked (their imports pull in what they use); a recipe whose
    # names match nothing in the lock gets every distribution checked instead.
    locked = {canonical_name(w.name) for w in config.lock}
    wanted = requested_names(config.requirements) & locked or locked
    modules = top_level_modules(site, wanted)
    modules += [n.split(".")[0] for n in linked if not n.endswith((".dist-info", ".egg-info"))]
    # The check must not leave bytecode behind with --no-compile, nor write into distro folders.
    env = {**job.check_env, "PYTHONDONTWRITEBYTECODE": "1"}
    health_check(
        staging, modules=sorted(set(modules)), command=job.check_command, env=env, user=job.check_user
    )
    pause_point("checked")


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="venv-pull-") as tmp:
        os.chmod(tmp, 0o700)
        yield Path(tmp)


__all__ = ["InstallError", "StageJob", "Staged", "stage_generation"]
