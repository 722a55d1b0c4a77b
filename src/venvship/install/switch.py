"""The fifth step of an install: the checked generation committed under its final name, a plain
venv at the destination kept as a generation, and the destination's symlink switched to it in
one rename (DESIGN §5). Also the switch back to a generation of the same artifact made before."""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from .. import __version__
from .._log import logger
from ..artifact.documents import Fact
from ..errors import VenvshipError
from ..host import trust
from .faults import pause_point
from .generations import Generations, State, mark_facts_pending
from .plan import Plan, RecordOptions
from .recording import record_refs
from .staging import Staged


def switch(plan: Plan, checked: Staged) -> State:
    """Commit ``checked`` with its state, switch the destination to it; return its state.

    ``plan.signers``: per digest, the keys that verified it (recorded for the no-op's policy check).

    Example: ``state = switch(plan, check(plan, staged))``
    """
    from .pull import referenced_digests

    gens, selected, live = plan.gens, plan.chosen, plan.live
    config, generation = selected.config, checked.generation
    state = State(
        generation=generation,
        digest=selected.digest,
        ref_digest=selected.ref_digest,
        reference=str(plan.ref),
        name=config.name,
        version=config.version,
        created=time.time(),
        previous_digest=live.digest if live else "",
        previous_generation=live.generation if live else "",
        tools={"installer": checked.tool, "venvship": __version__, "python": sys.version.split()[0]},
        lock=tuple(f"{w.name}=={w.version}" for w in config.lock),
        blobs=tuple(referenced_digests(selected, from_wheels=plan.staging.from_wheels)),
        facts=config.facts,
        dist_infos=checked.dist_infos,
        signers=plan.signers,
    )
    staging = gens.stage_path(generation)
    mark_facts_pending(staging)  # a kill after the switch: the rerun writes the facts
    gens.write_state(staging, state)
    gens.commit(staging, generation)
    record_refs(gens, plan.cache)
    pause_point("committed")
    _adopt_plain_dir(gens, plan.recording, state)
    gens.switch(generation)
    pause_point("switched")
    return state


def switch_back(plan: Plan, made: State) -> State:
    """Switch to the generation of ``made`` (the same artifact, made before): nothing is built.

    Its venv stays as it is; its state now names the generation switched away from as the
    previous one (what a rollback returns to), and the facts are written as for an install.
    Runtime distro packages are not ensured again, as for a rollback: it was made on this host.
    """
    gens, live = plan.gens, plan.live
    logger.info("generation %s holds this artifact already: switching back to it", made.generation)
    state = replace(
        made,
        previous_digest=live.digest if live else "",
        previous_generation=live.generation if live else "",
    )
    folder = gens.path(state.generation)
    mark_facts_pending(folder)  # a kill after the switch: the rerun writes the facts
    gens.write_state(folder, state)
    _adopt_plain_dir(gens, plan.recording, state)
    gens.switch(state.generation)
    pause_point("switched")
    return state


def _adopt_plain_dir(gens: Generations, options: RecordOptions, state: State) -> None:
    """Keep a venv made without venv-pull as a generation, with the facts that describe it now."""
    from .facts import facts_now

    facts_dir = options.facts_dir

    def described() -> tuple[Fact, ...]:
        try:
            trust.check_existing([(facts_dir, "the facts folder")])
        except VenvshipError:  # root reads nothing from a folder others can write
            return tuple(replace(f, value="") for f in state.facts)
        return facts_now(facts_dir, state.facts)

    gens.adopt_plain_dir(described, adopt=options.adopt)
