"""``venv-pull install``, as its steps: plan → fetch → stage → check → switch → record (DESIGN §1,
§5). Each step is a module with one entry point; the plan is made once, and each later step reads
from it only what it needs."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .options import DEFAULT_CACHE, DEFAULT_FACTS, InstallOptions, InstallResult
from .plan import Plan, locked, open_plan
from .registries import served_by

if TYPE_CHECKING:
    from ..oci.reference import Ref


def install(ref: Ref, opts: InstallOptions) -> InstallResult:
    """Install the artifact ``ref`` on this host (see DESIGN §5).

    Example: ``install(parse_ref("oci:build/oci:demo:1.0"), InstallOptions(dest=Path("/srv/demo")))``
    """
    # The plan: the policy, the source, the destination; the manifest chosen and verified.
    with open_plan(ref, opts) as plan:
        if plan.done is not None:  # the live generation holds this artifact already
            return plan.done
        if opts.check:  # what a run would fail on or change; nothing written
            return _dry_run(plan)
        # The steps that write are imported once there is work: a no-op rerun's cost is mostly
        # imports (#23).
        from .recording import record
        from .switch import switch, switch_back

        with locked(plan) as plan:  # trusted folders, the locks; the live generation read again
            if plan.done is not None:
                result = plan.done
            elif plan.pending is not None:  # the live generation is this artifact, its facts unwritten
                result = record(plan, plan.pending)
            elif plan.made is not None:  # a generation made before holds this artifact
                result = record(plan, switch_back(plan, plan.made))
            else:
                from .check import check
                from .fetch import fetch
                from .staging import stage, staging_progress

                fetched = fetch(plan)
                with staging_progress(plan) as on_layer:
                    staged = stage(plan, fetched, on_layer=on_layer)
                    checked = check(plan, staged)
                result = record(plan, switch(plan, checked), bytecode=checked.bytecode)
            return replace(result, pulled=served_by(plan.source))


def _dry_run(plan: Plan) -> InstallResult:
    """``--check``: what a run would fail on, and the distro commands it would run; nothing written."""
    from .fetch import pending_distro_commands, preflight

    preflight(plan)
    pending_distro_commands(plan)
    live, selected = plan.live, plan.chosen
    kept = live is not None and not plan.rebuild and live.digest == selected.digest
    return InstallResult(
        changed=True,
        dest=str(plan.gens.dest),
        digest=selected.digest,
        previous_digest=live.digest if live else "",
        generation=live.generation if kept and live else "",
        packages=len(selected.config.lock),
        facts_written=False,  # --check writes nothing, facts included
        check=True,
        lock=tuple((wheel.name, wheel.version) for wheel in selected.config.lock),
    )


__all__ = ["DEFAULT_CACHE", "DEFAULT_FACTS", "InstallOptions", "InstallResult", "install"]
