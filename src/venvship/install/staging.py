"""One generation's venv, built and checked in its staging folder (never the live one)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ContextManager, Iterator

from ..artifact import VenvConfig, Wheel
from ..errors import InstallError
from ..oci.layout import Layout
from . import clone
from .bytecode import BytecodeResult, compile_generation
from .faults import pause_point
from .generations import Generations, State
from .hardlinks import linking
from .health import canonical_name, health_check, requested_names, top_level_modules
from .pull import find_links
from .symlinks import link_system_packages
from .venvs import Installer, InstallJob, create_venv, requirements_text, site_packages

if TYPE_CHECKING:
    from .installer import InstallOptions


@dataclass(frozen=True)
class StageJob:
    """What staging one generation needs."""

    opts: InstallOptions
    gens: Generations
    cache: Layout
    config: VenvConfig
    installer: Installer
    env: dict[str, str]
    python: str
    generation: str


def stage_generation(
    b: StageJob, *, live: State | None, origin: clone.Origin | None
) -> BytecodeResult | None:
    """Stage generation ``b.generation`` and check it: every wheel installed, or (``origin``) cloned from
    the live generation and only the other wheels installed. Returns the bytecode result."""
    staging, final, config = b.gens.stage(b.generation), b.gens.path(b.generation), b.config
    with _workdir() as work:
        create_venv(b.python, staging, prompt=b.gens.dest.name)  # as `python -m venv DEST` would
        pause_point("venv")
        wheels: tuple[Wheel, ...] = config.lock
        cloning: ContextManager[None] = contextlib.nullcontext()
        if origin is not None:
            plan = clone.plan_from(origin, staging, lock=config.lock, cache=b.cache)
            wheels, cloning = plan.install, linking(plan, staging, final=final)
        with cloning:  # the kept distributions are linked while the others are installed
            if wheels:
                requirements = work / "requirements.txt"
                requirements.write_text(requirements_text(wheels))
                job = InstallJob(
                    venv=staging,
                    find_links=find_links(b.cache, replace(config, lock=tuple(wheels)), work),
                    requirements=requirements,
                    pip_args=config.install_pip_args,
                    env=b.env,
                )
                b.installer.install(job)
    pause_point("installed")
    site = site_packages(staging)
    bytecode = None
    if b.opts.compile:
        # --rebuild asks for a fresh generation: nothing is taken from the live one; a clone has
        # the live generation's pycs of its unchanged files already.
        previous = (
            None if b.opts.rebuild or origin else _previous_site(b.gens, live, site.relative_to(staging))
        )
        bytecode = compile_generation(
            staging / "bin" / "python", staging, site=site, previous_site=previous, final=final, env=b.env
        )
    minor = int(site.parent.name.split(".")[1])
    linked = link_system_packages(config.symlink_system_packages, site=site, minor=minor)
    # The recipe's own packages are checked (their imports pull in what they use); a recipe whose
    # names match nothing in the lock gets every distribution checked instead.
    locked = {canonical_name(w.name) for w in config.lock}
    wanted = requested_names(config.requirements) & locked or locked
    modules = top_level_modules(site, wanted)
    modules += [n.split(".")[0] for n in linked if not n.endswith((".dist-info", ".egg-info"))]
    # The check must not leave bytecode behind with --no-compile, nor write into distro folders.
    check_env = {**b.env, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        health_check(staging, modules=sorted(set(modules)), command=b.opts.check_command, env=check_env)
    except InstallError:
        shutil.rmtree(staging, ignore_errors=True)  # discarded; the live venv was never touched
        raise
    pause_point("checked")
    return bytecode


def _previous_site(gens: Generations, live: State | None, rel: Path) -> Path | None:
    """Return the live venv's site-packages at ``rel`` (the live generation, or a plain directory at
    the destination made by the original role), or None when there is none for this python."""
    if live is not None:
        venv = gens.path(live.generation)
    elif gens.dest.is_dir() and not gens.dest.is_symlink():
        venv = gens.dest
    else:
        return None
    site = venv / rel
    return site if site.is_dir() and not site.is_symlink() else None


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="venv-pull-") as tmp:
        yield Path(tmp)
