"""The fourth step of an install: the staged generation checked before anything points to it. The
distro packages to symlink are linked, then the health check imports the recipe's packages as an
unprivileged user, with an allow-listed environment. A generation that fails is discarded; the
live venv was never touched."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from ..venvformat.create import install_env, site_packages
from ..venvformat.symlinks import link_system_packages
from . import store
from .faults import pause_point
from .health import Loads, canonical_name, health_check, requested_names, script_modules, top_level_modules
from .plan import Plan
from .staging import Staged


def check(plan: Plan, staged: Staged) -> Staged:
    """Return ``staged`` with its dist-info folders once it passed its check; raise InstallError
    (the staging folder removed) when it fails.

    Example: ``checked = check(plan, stage(plan, fetched, on_layer=report))``
    """
    staging = plan.gens.stage_path(staged.generation)
    try:
        site = site_packages(staging)
        config, options = plan.chosen.config, plan.staging
        minor = int(site.parent.name.split(".")[1].rstrip("t"))
        linked = link_system_packages(config.symlink_system_packages, site=site, minor=minor)
        # The recipe's own packages are checked (their imports pull in what they use); a recipe whose
        # names match nothing in the lock gets every distribution checked instead.
        locked = {canonical_name(w.name) for w in config.lock}
        wanted = requested_names(config.requirements) & locked or locked
        modules = top_level_modules(site, wanted)
        modules += [n.split(".")[0] for n in linked if not n.endswith((".dist-info", ".egg-info"))]
        loads = Loads(
            imports=tuple(sorted(set(modules))),
            finds=tuple(script_modules(site, wanted)),
            sites=(site,),
            ours=tuple(sorted(set(top_level_modules(site)) | set(modules))),
            bytecode=_store_bytecode(plan, staged, site) if staged.bytecode is None else {},
            extensions=None
            if staged.extensions is None
            else tuple(str(staging / rel) for rel in staged.extensions),
        )
        # The check must not leave bytecode behind with --no-compile, nor write into distro folders.
        env = {**install_env(config.install_env, privileged=False), "PYTHONDONTWRITEBYTECODE": "1"}
        health_check(
            staging,
            loads=loads,
            command=options.check_command,
            env=env,
            user=options.check_user,
        )
        pause_point("checked")
        infos = tuple(sorted(p.name for p in site.glob("*.dist-info") if not p.is_symlink()))
        return replace(staged, dist_infos=infos)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # discarded; the live venv was never touched
        raise


def _store_bytecode(plan: Plan, staged: Staged, site: Path) -> dict[str, tuple[str, ...]]:
    """Return top-level name → the store trees holding it, for a generation filled from layers
    without bytecode: the check then reads the layers' bytecode from the store (root's, checked
    when unpacked) rather than compiling every module it imports."""
    layers = plan.chosen.config.layers
    if staged.tool != "layers" or layers is None:
        return {}
    rel = site.relative_to(plan.gens.stage_path(staged.generation))
    found: dict[str, list[str]] = {}
    for layer in layers.distributions:
        tree = store.entry_path(plan.cache.root, layer.digest) / "tree"
        try:
            names = os.listdir(tree / rel)
        except OSError:
            continue  # nothing in site-packages, or no store entry: that layer's modules compile
        for name in names:
            found.setdefault(name.split(".")[0], []).append(os.path.abspath(tree))  # the check runs in /
    return {name: tuple(trees) for name, trees in found.items()}
