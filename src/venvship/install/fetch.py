"""The second step of an install: what the new generation needs, brought to this host. Everything
the host lacks is named first (preflight), then the blobs are pulled into the digest-keyed cache
and the runtime distro packages installed. Also what ``--check`` reports without fetching."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._fsutil import disk_space
from .._log import activity, logger
from .._units import human_size
from ..artifact.documents import VenvConfig
from .faults import pause_point
from .plan import Plan


@dataclass(frozen=True)
class Fetched:
    """What the host holds now for the new generation: the interpreter that makes it."""

    python: str


def fetch(plan: Plan) -> Fetched:
    """Check this host, pull the blobs the plan's manifest needs, install its distro packages.

    Example: ``staged = stage(plan, fetch(plan))``
    """
    from ..host.distro import ensure

    python = preflight(plan)  # everything this host lacks, before any work
    _pull(plan)
    pause_point("pulled")
    if plan.host.distro_packages:
        ensure("install", **distro_args(plan.chosen.config))
    return Fetched(python=python)


def preflight(plan: Plan) -> str:
    """Return the host interpreter, or raise PreconditionError naming all this host lacks."""
    from .preflight import Preflight, check_preconditions
    from .pull import needed

    selected, host = plan.chosen, plan.host
    return check_preconditions(
        Preflight(
            config=selected.config,
            cache=plan.cache,
            dest=plan.gens.dest,
            facts_dir=host.facts_dir,
            python=host.python or selected.config.python.executable,
            managed=tuple(plan.managed()),
            needed=tuple(needed(selected, from_wheels=host.from_wheels)),
            from_wheels=host.from_wheels,
            distro_packages=host.distro_packages,
            check_user=host.check_user,
            allowed_tools=host.allowed_tools,
        )
    )


def pending_distro_commands(plan: Plan) -> None:
    """Log the distro commands fetching would run (``--check``); run none."""
    from ..host.distro import pending

    if plan.host.distro_packages:
        _, todo = pending("install", **distro_args(plan.chosen.config))
        if todo is not None:
            logger.info("%s", todo.describe(verb="would run"))


def distro_args(config: VenvConfig) -> dict[str, Any]:
    """Return the runtime distro packages of ``config`` as :func:`distro.ensure` takes them."""
    return {
        "extra": config.install_distro_packages,
        "state": "latest" if config.distro_package_state == "latest" else "present",
        "cache_valid_time": config.distro_cache_valid_time,
    }


def _pull(plan: Plan) -> None:
    """Pull the blobs the install needs into the cache, saying how far it got; a full cache is
    one error line."""
    from .pull import needed, pull

    cache, selected, from_wheels = plan.cache, plan.chosen, plan.host.from_wheels
    missing = [d for d in needed(selected, from_wheels=from_wheels) if not cache.has_blob(d.digest, d.size)]
    size = sum(d.size for d in missing)
    with disk_space(cache.root, needed=size), activity("pulling", total=len(missing)) as report:

        def on_blob(n: int, total: int, done: int) -> None:
            report(n, f"{human_size(done)} of {human_size(size)}")
            if n == 1 and total > 1:
                pause_point("pulling")  # the test seam for a kill in the middle of a pull

        fetched = pull(plan.source, cache, selected, from_wheels=from_wheels, on_blob=on_blob)
    logger.info("pulled %d blobs into %s", fetched, cache.root)
