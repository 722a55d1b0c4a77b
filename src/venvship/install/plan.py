"""The first step of an install: the plan, made once from the options, the reference and the
host's trust policy. What is installed where: the source, the destination and its generations,
the manifest chosen for this host with the keys that signed it, and for each later step the few
options it reads. A plan may find the work done already (:attr:`Plan.done`): the live generation
holds the artifact, checked without pulling or probing anything.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Collection, Iterator, Mapping

from .._fsutil import file_lock
from .._log import logger
from .._process import lend_fds
from ..artifact.destinations import check_destination
from ..errors import InstallError, TrustError, VenvshipError
from ..host import trust
from ..host.info import Interpreter, probe_python
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.source import Source
from ..verify.policy import check_named, check_release, load_policy
from ..verify.select import BlobReader, Host, Selected, any_config, resolve_top, select
from . import cachestore
from .faults import pause_point
from .generations import FACTS_PENDING, Generations, State
from .options import InstallOptions, InstallResult
from .registries import open_install_source


@dataclass(frozen=True)
class HostNeeds:
    """What fetching reads: how the venv is made on this host and what the host must have."""

    python: str | None  # the host interpreter to use instead of the artifact's
    from_wheels: bool
    distro_packages: bool
    allowed_tools: tuple[str, ...]
    check_user: str | None
    facts_dir: Path


@dataclass(frozen=True)
class StageOptions:
    """What staging and checking a generation read."""

    compile: bool
    from_wheels: bool
    allowed_tools: Collection[str]
    check_command: str | None
    check_user: str | None


@dataclass(frozen=True)
class RecordOptions:
    """What switching and recording read: the facts folder, generations kept, adopting a plain venv."""

    facts_dir: Path
    keep: int
    adopt: bool


@dataclass(frozen=True)
class Plan:
    """One install, decided: see the module docstring. ``selected`` is None only when ``done``."""

    ref: Ref
    source: Source
    cache: Layout
    gens: Generations
    live: State | None
    selected: Selected | None
    signers: Mapping[str, tuple[str, ...]]
    host: HostNeeds
    staging: StageOptions
    recording: RecordOptions
    rebuild: bool = False  # a new generation even when one of this artifact is intact
    lock_timeout: float | None = None  # how long to wait for the cache's and destination's locks
    done: InstallResult | None = None  # the work is done already: the result to report
    made: State | None = None  # under the lock: a generation of this artifact to return to
    pending: State | None = None  # under the lock: the live generation, its facts still to write

    @property
    def chosen(self) -> Selected:
        """Return the manifest chosen for this host (the plan is not done)."""
        if self.selected is None:
            raise InstallError(f"{self.gens.dest}: nothing selected")  # not reached: done plans stop first
        return self.selected

    def managed(self) -> list[Path]:
        """Return the folders venvship manages on this host: no interpreter may come from them."""
        cache, gens = self.cache.root, self.gens
        return [cache, gens.dest, gens.root, *(d for _, d, _ in cachestore.recorded_dests(cache))]


@contextlib.contextmanager
def open_plan(ref: Ref, opts: InstallOptions) -> Iterator[Plan]:
    """Yield the plan of installing ``ref`` with ``opts``; its source's connections close after.

    Example: ``with open_plan(parse_ref("oci:build/oci:demo:1.0"), InstallOptions()) as plan: ...``
    """
    rule = load_policy(opts.policy).rule_for(ref)  # a broken policy stops here, before any request
    source = open_install_source(ref, opts.access, opts.mirrors)  # a broken mirror file stops here too
    cache = Layout(opts.cache)  # created under the lock, once there is something to write
    reader = BlobReader(source, cache)
    try:
        top, top_raw = resolve_top(source, ref)
        dest = opts.dest or Path(any_config(reader, top_raw, where=str(ref)).install_path)
        gens = Generations(_checked_dest(dest, opts))
        # Before any state of it is believed: a "live generation" in a folder another user can
        # write would otherwise make this run report success without a single check.
        trust.check_existing(state_folders(gens))
        # The cheap no-op check first: the same reference digest and an intact live generation,
        # verified when it was installed by keys the policy still trusts (no request for that;
        # a policy that changed since sends the run through verification again).
        live = live_state(gens)
        facts_due = live is not None and (gens.path(live.generation) / FACTS_PENDING).exists()
        plan = Plan(
            ref=ref,
            source=source,
            cache=cache,
            gens=gens,
            live=live,
            selected=None,
            signers={},
            host=HostNeeds(
                python=opts.python,
                from_wheels=opts.from_wheels,
                distro_packages=opts.distro_packages,
                allowed_tools=tuple(opts.allowed_tools),
                check_user=opts.check_user,
                facts_dir=opts.facts_dir,
            ),
            staging=StageOptions(
                compile=opts.compile,
                from_wheels=opts.from_wheels,
                allowed_tools=opts.allowed_tools,
                check_command=opts.check_command,
                check_user=opts.check_user,
            ),
            recording=RecordOptions(facts_dir=opts.facts_dir, keep=opts.keep, adopt=opts.adopt),
            rebuild=opts.rebuild,
            lock_timeout=opts.lock_timeout,
        )
        if (
            live
            and not opts.rebuild
            and not facts_due
            and live.ref_digest == top.digest
            and rule.satisfied_by(live.signers, _signed(live.ref_digest, live.digest))
        ):
            yield replace(plan, done=result_of(gens, live, changed=False, facts_written=False))
            return
        from ..verify.signature import verify_signed  # past the no-op's return: it is mostly imports

        selected = select(reader, ref, host=Host.detect(), probe=_prober(plan))
        if rule.require_signature:
            check_named(ref, selected.config.name)  # the key signs every venv of a release
            check_release(ref, selected.config.version, selected.config.platform_key)  # and every release
        # Before anything is pulled or written: the index and the manifest chosen from it.
        signers = verify_signed(rule, reader, _signed(selected.ref_digest, selected.digest), where=str(ref))
        pause_point("verified")
        plan = replace(plan, selected=selected, signers=signers)
        if live and not opts.rebuild and not facts_due and live.digest == selected.digest:
            plan = replace(plan, done=result_of(gens, live, changed=False, facts_written=False))
        yield plan
    finally:
        reader.close()


@contextlib.contextmanager
def locked(plan: Plan) -> Iterator[Plan]:
    """Check the folders root will write, take the cache's and the destination's locks, and yield
    the plan as it stands under them: a concurrent run may have finished meanwhile."""
    gens, cache = plan.gens, plan.cache.root
    # Refuses a destination that is neither a venv nor ours, before anything is made.
    gens.adoptable(adopt=plan.recording.adopt)
    trust.trusted_dir(cache, what="the blob cache")
    trust.check_existing(_cache_folders(cache))
    trust.trusted_dir(gens.dest.parent, what="the destination's folder")
    trust.trusted_dir(gens.root, what="the generations folder")
    # Cache lock first, then the destination's: prune takes them in the same order (no deadlock).
    # Children inherit the destination lock: if this run is killed, a child still writing into
    # the staging folder holds it until it exits, and a rerun waits instead of sharing the folder.
    with (
        cachestore.cache_lock(cache, shared=True, timeout=plan.lock_timeout),
        file_lock(gens.lock_path, timeout=plan.lock_timeout) as lock_fd,
        lend_fds(lock_fd),
    ):
        pause_point("locked")
        yield _under_lock(replace(plan, cache=Layout.create(cache)))


def _under_lock(plan: Plan) -> Plan:
    """Return ``plan`` with the live generation read again, and what may spare a new one."""
    from . import store  # imported here, on the way to a new generation: the no-op stays fast

    gens, digest, rebuild = plan.gens, plan.chosen.digest, plan.rebuild
    live = live_state(gens)  # again, under the lock: a concurrent run may have finished
    plan = replace(plan, live=live)
    if live and not rebuild and live.digest == digest:
        if (gens.path(live.generation) / FACTS_PENDING).exists():
            return replace(plan, pending=live)
        return replace(plan, done=result_of(gens, live, changed=False, facts_written=False))
    removed = gens.clean_partials()
    if removed:
        logger.info("removed unfinished generations: %s", ", ".join(removed))
    plan.cache.remove_stale_temp()
    store.remove_stale(plan.cache.root)
    made = None if rebuild else _made_before(gens, digest, live)
    return replace(plan, made=replace(made, signers=plan.signers) if made else None)


def result_of(gens: Generations, state: State, *, changed: bool, facts_written: bool) -> InstallResult:
    """Return the result that reports ``state`` as the live generation of ``gens``."""
    # Where a rollback goes, as the facts say: after a rollback that is not what ``state`` was
    # installed over.
    previous = gens.rollback_target(state.generation)
    return InstallResult(
        changed=changed,
        dest=str(gens.dest),
        digest=state.digest,
        previous_digest=previous.digest if previous else "",
        generation=state.generation,
        packages=len(state.lock),
        facts_written=facts_written,
    )


def live_state(gens: Generations) -> State | None:
    """Return the live generation's state if it is intact and holds every distribution it was made with."""
    current = gens.current_id()
    if current is None or not gens.intact(current):
        return None
    state = gens.read_state(current)
    if state is None or not gens.complete(state):
        return None
    return state


def state_folders(gens: Generations) -> list[tuple[Path, str]]:
    """Return the folders whose content decides what ``gens`` holds, with what to call them."""
    return [(gens.dest.parent, "the destination's folder"), (gens.root, "the generations folder")]


def _cache_folders(cache: Path) -> list[tuple[Path, str]]:
    """Return the cache's folders that hold what venv-pull links or reads as its own (the cache
    itself is checked on its own): a folder in it another user owns would hand them the venv."""
    from .store import store_root

    return [
        (cache / "blobs", "the blob cache's blobs folder"),
        (cache / "blobs" / "sha256", "the blob cache's blobs folder"),
        (store_root(cache), "the store of unpacked layers"),
        (cache / "refs", "the blob cache's refs folder"),
    ]


def _signed(ref_digest: str, digest: str) -> tuple[str, ...]:
    """Return the digests a signature must cover: what the reference names and the manifest chosen."""
    return tuple(dict.fromkeys((ref_digest, digest)))


def _checked_dest(dest: Path, opts: InstallOptions) -> Path:
    """Return the destination if it is one venv-pull may manage (artifact/destinations.py has the rules)."""
    # The cache's records of other venvs are believed only from root's folders (checked again,
    # with the rest of the cache, under the lock).
    trust.check_existing(
        [(opts.cache, "the blob cache"), (opts.cache / "refs", "the blob cache's refs folder")]
    )
    others = [d for _, d, _ in cachestore.recorded_dests(opts.cache)]
    return check_destination(dest, cache=opts.cache, facts_dir=opts.facts_dir, others=others)


def _prober(plan: Plan) -> Callable[[str], Interpreter]:
    """Return how selection finds the interpreter for an artifact's python: the host's, vetted.

    A ``--python`` stands for every python the artifact names, so it is probed first and alone:
    when it cannot be used, that is the error, not that each of the artifact's pythons is missing.
    """
    python = plan.host.python
    if python:
        try:
            asked = probe_python(trust.host_python(python, managed=plan.managed()))
        except TrustError:
            raise
        except VenvshipError as exc:
            raise InstallError(f"--python {python}: {exc}") from exc
        return lambda executable: asked

    def probe(executable: str) -> Interpreter:
        return probe_python(trust.host_python(executable, managed=plan.managed()))

    return probe


def _made_before(gens: Generations, digest: str, live: State | None) -> State | None:
    """Return the newest intact generation of ``digest`` that is not the live one, if any."""
    current = live.generation if live else None
    for state in reversed(gens.all()):
        same = state.digest == digest and state.generation != current
        if same and gens.intact(state.generation) and gens.complete(state):
            return state
    return None
