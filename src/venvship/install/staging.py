"""The third step of an install: one generation's venv, made in its staging folder (never the live
one): the venv skeleton and the distributions, unpacked from layers or installed from wheels,
then its paths set to the folder it gets once complete. Checking it is the next step (check.py)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterator, Mapping

from .._fsutil import disk_space
from .._log import activity
from ..artifact.documents import VenvConfig
from ..artifact.layerformat import LayerInfo
from ..errors import InstallError
from ..oci.layout import Layout
from ..venvformat.bytecode import BytecodeResult, compile_bytecode
from ..venvformat.create import create_venv, relocate, site_packages
from .faults import pause_point
from .fetch import Fetched
from .generations import Generations
from .layerinstall import fill
from .plan import Plan
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
    compile: bool = True
    from_wheels: bool = False
    allowed_tools: Collection[str] = ()
    on_layer: Callable[[LayerInfo], None] | None = None


@dataclass(frozen=True)
class Staged:
    """A generation made under its staging name: its bytecode, its dist-info folders (once checked)."""

    generation: str
    bytecode: BytecodeResult | None
    dist_infos: tuple[str, ...]
    tool: str  # what laid the files out: "layers", or the install tool and its version
    # Every file that may be an extension module (``*.so``, relative to the venv), when the layers
    # laid them out; None when an install tool did.
    extensions: tuple[str, ...] | None = None


def stage_generation(job: StageJob) -> Staged:
    """Make generation ``job.generation`` in its staging folder; raise InstallError (the staging
    folder removed) when the venv cannot be made."""
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
            staged = Staged(
                generation=job.generation,
                bytecode=bytecode,
                dist_infos=(),
                tool="layers",
                extensions=filled.extensions,
            )
        pause_point("installed")
        # The skeleton (pyvenv.cfg, activate scripts) and an installer's scripts name the staging
        # folder: they must name the folder the generation gets once complete.
        relocate(staging, old=staging, new=final)
        return staged
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
    tool = f"{installer.name} {installer.version()}"
    return Staged(generation=job.generation, bytecode=bytecode, dist_infos=(), tool=tool)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="venv-pull-") as tmp:
        os.chmod(tmp, 0o700)
        yield Path(tmp)


def stage(plan: Plan, fetched: Fetched, *, on_layer: Callable[[LayerInfo], None]) -> Staged:
    """Make a new generation of the plan's manifest in its staging folder.

    Example: ``staged = stage(plan, fetch(plan), on_layer=report)``
    """
    from ..venvformat.create import install_env

    config, options = plan.chosen.config, plan.staging
    return stage_generation(
        StageJob(
            gens=plan.gens,
            generation=plan.gens.new_id(plan.chosen.digest),
            cache=plan.cache,
            config=config,
            python=fetched.python,
            env=install_env(config.install_env, privileged=True),
            compile=options.compile,
            from_wheels=options.from_wheels,
            allowed_tools=options.allowed_tools,
            on_layer=on_layer,
        )
    )


@contextlib.contextmanager
def staging_progress(plan: Plan) -> Iterator[Callable[[LayerInfo], None]]:
    """Show how far staging and checking got (one step per layer), and turn a full disk met on the
    way into one error line; yield what each unpacked layer reports to."""
    layers = (
        ()
        if plan.staging.from_wheels or plan.chosen.config.layers is None
        else plan.chosen.config.layers.distributions
    )
    how = f"installing with {plan.chosen.config.install_tool}" if plan.staging.from_wheels else "installing"
    with disk_space(plan.cache.root, plan.gens.root), activity(how, total=len(layers)) as report:
        unpacked = itertools.count(1)

        def on_layer(layer: LayerInfo) -> None:
            n = next(unpacked)  # called from the unpacking threads: count() hands out each n once
            report(n, "then the health check" if n == len(layers) else layer.name)

        yield on_layer


__all__ = ["InstallError", "StageJob", "Staged", "stage", "stage_generation", "staging_progress"]
