"""The last step of an install: the live generation recorded. Its facts written (the recipe's and
venvship's own), its pending mark cleared, old generations pruned, the cache told which blobs each
destination holds; then the result the run reports."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from .. import __version__
from .._fsutil import disk_space
from .._log import logger
from ..artifact.documents import Fact
from ..host import trust
from ..oci.layout import Layout
from ..venvformat.bytecode import BytecodeResult
from . import cachestore
from .generations import FACTS_PENDING, Generations, State
from .options import InstallResult
from .plan import Plan, result_of


def record(plan: Plan, state: State, *, bytecode: BytecodeResult | None = None) -> InstallResult:
    """Write the facts of the live generation ``state``, clear its pending mark, prune; return the
    result (``bytecode``: what staging this generation compiled or reused, if it was made now).

    Example: ``return record(plan, switch(plan, checked), bytecode=checked.bytecode)``
    """

    gens, cache, options = plan.gens, plan.cache, plan.recording
    with disk_space(options.facts_dir):
        written = write_live_facts(gens, state, facts_dir=options.facts_dir)
    with contextlib.suppress(FileNotFoundError):
        (gens.path(state.generation) / FACTS_PENDING).unlink()
    pruned = gens.prune(options.keep)
    if pruned:
        logger.info("pruned generations: %s", ", ".join(pruned))
        record_refs(gens, cache)
    return replace(result_of(gens, state, changed=True, facts_written=bool(written)), bytecode=bytecode)


def write_live_facts(
    gens: Generations, state: State, *, facts_dir: Path, previous_digest: str | None = None
) -> list[Path]:
    """Write the recipe's facts of ``state`` plus venvship's own options; return files written."""
    from .facts import facts_with_own, write_facts

    facts: list[Fact] = list(state.facts)
    own = {
        "venvship_digest": state.digest,
        "venvship_previous_digest": state.previous_digest if previous_digest is None else previous_digest,
        "venvship_version": __version__,
    }
    if facts:
        trust.trusted_dir(facts_dir, what="the facts folder")
    return write_facts(facts_dir, facts_with_own(facts, own))


def record_refs(gens: Generations, cache: Layout) -> None:
    """Tell the cache which blobs the generations of ``gens`` hold (what garbage collection keeps)."""
    blobs: set[str] = set()
    for state in gens.all():
        blobs.update(state.blobs)
    cachestore.record_refs(cache.root, gens.dest, blobs)
