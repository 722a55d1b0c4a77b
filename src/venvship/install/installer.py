"""``venv-pull install``: select → verify signatures (policy) → check what is trusted → pull
→ stage a generation → check → switch → state and facts (DESIGN §1, §5)."""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping

from .. import __version__
from .._fsutil import disk_space, file_lock
from .._log import activity, logger
from .._process import lend_fds
from .._units import human_size
from ..artifact import Fact, VenvConfig
from ..destinations import check_destination
from ..errors import InstallError, TrustError, VenvshipError
from ..hostinfo import Interpreter, probe_python
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.source import Access, Source
from . import cachestore, trust
from .faults import pause_point
from .generations import FACTS_PENDING, Generations, State, mark_facts_pending
from .policy import check_named, load_policy
from .registries import MirrorOptions, open_install_source, served_by
from .select import BlobReader, Host, Selected, any_config, resolve_top, select
from .signature import verify_signed

if TYPE_CHECKING:
    from ..layerformat import LayerInfo
    from .bytecode import BytecodeResult
    from .staging import Staged

DEFAULT_CACHE = Path("/var/cache/venvship")
DEFAULT_FACTS = Path("/etc/ansible/facts.d")


@dataclass(frozen=True)
class InstallOptions:
    """What ``venv-pull install`` was asked to do (the reference itself is passed on its own)."""

    dest: Path | None = None
    cache: Path = DEFAULT_CACHE
    facts_dir: Path = DEFAULT_FACTS
    keep: int = 2
    rebuild: bool = False
    compile: bool = True
    check: bool = False
    lock_timeout: float | None = None
    adopt: bool = False  # keep a venv venv-pull did not make at the destination as a generation
    check_command: str | None = None
    check_user: str | None = "nobody"  # who runs the health check when this process is root
    distro_packages: bool = True
    from_wheels: bool = False
    python: str | None = None  # the host interpreter to use instead of the artifact's
    allowed_tools: Collection[str] = ()  # tool wheel sha256s allowed beyond venv-pull's own pins
    policy: Path | None = None  # the trust policy file; None: /etc/venvship/policy.toml (or .json) if there
    access: Access = field(default_factory=Access)  # registry login etc.; never shown
    mirrors: MirrorOptions = field(default_factory=MirrorOptions)  # where else blobs may come from


@dataclass(frozen=True)
class InstallResult:
    """What an install did (or, with ``check``, would do)."""

    changed: bool
    dest: str
    digest: str
    previous_digest: str
    generation: str
    packages: int
    facts_written: bool
    check: bool = False
    bytecode: BytecodeResult | None = None
    pulled: Mapping[str, str] = field(default_factory=dict)  # blob digest → HOST/REPO it came from

    def to_json(self, *, blobs: bool = False) -> dict[str, object]:
        """Return the ``--json`` document; ``blobs``: also each pulled blob and where it came from."""
        data: dict[str, object] = {
            "changed": self.changed,
            "dest": self.dest,
            "digest": self.digest,
            "previous_digest": self.previous_digest,
            "generation": self.generation,
            "packages": self.packages,
            "facts_written": self.facts_written,
        }
        if self.check:
            data["check"] = True
        if self.bytecode is not None:
            data["bytecode"] = self.bytecode.to_json()  # only when this run made a generation
        if self.pulled:  # only when this run fetched blobs: how many from each source
            sources = Counter(self.pulled.values())
            data["pulled_from"] = dict(sorted(sources.items()))
            if blobs:  # a hundred digests are noise in a playbook's output, unless asked for
                data["pulled"] = dict(sorted(self.pulled.items()))
        return data


def _result(gens: Generations, state: State, *, changed: bool, facts_written: bool) -> InstallResult:
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


def _live_state(gens: Generations) -> State | None:
    """Return the live generation's state if it is intact and holds every distribution it was made with."""
    current = gens.current_id()
    if current is None or not gens.intact(current):
        return None
    state = gens.read_state(current)
    if state is None or not gens.complete(state):
        return None
    return state


def install(ref: Ref, opts: InstallOptions) -> InstallResult:
    """Install the artifact ``ref`` on this host (see DESIGN §5).

    Example: ``install(parse_ref("oci:build/oci:demo:1.0"), InstallOptions(dest=Path("/srv/demo")))``
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
        live = _live_state(gens)
        facts_due = live is not None and (gens.path(live.generation) / FACTS_PENDING).exists()
        if (
            live
            and not opts.rebuild
            and not facts_due
            and live.ref_digest == top.digest
            and rule.satisfied_by(live.signers, _signed(live.ref_digest, live.digest))
        ):
            return _result(gens, live, changed=False, facts_written=False)
        selected = select(reader, ref, host=Host.detect(), probe=_prober(opts, gens))
        if rule.require_signature:
            check_named(ref, selected.config.name)  # the key signs every venv of a release
        # Before anything is pulled or written: the index and the manifest chosen from it.
        signers = verify_signed(rule, reader, _signed(selected.ref_digest, selected.digest), where=str(ref))
        pause_point("verified")
        if live and not opts.rebuild and not facts_due and live.digest == selected.digest:
            return _result(gens, live, changed=False, facts_written=False)
        if opts.check:
            return _checked(opts, gens, cache, live, selected)
        gens.adoptable(
            adopt=opts.adopt
        )  # refuses a destination that is neither a venv nor ours, before anything is made
        trust.trusted_dir(opts.cache, what="the blob cache")
        trust.check_existing(_cache_folders(opts.cache))
        trust.trusted_dir(gens.dest.parent, what="the destination's folder")
        trust.trusted_dir(gens.root, what="the generations folder")
        # Cache lock first, then the destination's: prune takes them in the same order (no deadlock).
        # Children inherit the destination lock: if this run is killed, a child still writing into
        # the staging folder holds it until it exits, and a rerun waits instead of sharing the folder.
        with (
            cachestore.cache_lock(opts.cache, shared=True, timeout=opts.lock_timeout),
            file_lock(gens.lock_path, timeout=opts.lock_timeout) as lock_fd,
            lend_fds(lock_fd),
        ):
            pause_point("locked")
            result = _install_locked(ref, opts, gens, source, Layout.create(opts.cache), selected, signers)
            return replace(result, pulled=served_by(source))
    finally:
        reader.close()


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


def _distro_args(config: VenvConfig) -> dict[str, Any]:
    """Return the runtime distro packages of ``config`` as :func:`distro.ensure` takes them."""
    return {
        "extra": config.install_distro_packages,
        "state": "latest" if config.distro_package_state == "latest" else "present",
        "cache_valid_time": config.distro_cache_valid_time,
    }


def _checked(
    opts: InstallOptions, gens: Generations, cache: Layout, live: State | None, selected: Selected
) -> InstallResult:
    """``--check``: what a run would fail on, and the distro commands it would run; nothing written."""
    from ..distro import pending

    _preflight(opts, gens, cache, selected)
    if opts.distro_packages:
        _, todo = pending("install", **_distro_args(selected.config))
        if todo is not None:
            logger.info("%s", todo.describe(verb="would run"))
    return _would_change(gens, live, selected, rebuild=opts.rebuild)


def _checked_dest(dest: Path, opts: InstallOptions) -> Path:
    """Return the destination if it is one venv-pull may manage (destinations.py has the rules)."""
    others = [d for _, d, _ in cachestore.recorded_dests(opts.cache)]
    return check_destination(dest, cache=opts.cache, facts_dir=opts.facts_dir, others=others)


def _preflight(opts: InstallOptions, gens: Generations, cache: Layout, selected: Selected) -> str:
    """Return the host interpreter, or raise PreconditionError naming all this host lacks."""
    from .preflight import Preflight, check_preconditions
    from .pull import needed

    return check_preconditions(
        Preflight(
            config=selected.config,
            cache=cache,
            dest=gens.dest,
            facts_dir=opts.facts_dir,
            python=opts.python or selected.config.python.executable,
            managed=tuple(_managed(opts, gens)),
            needed=tuple(needed(selected, from_wheels=opts.from_wheels)),
            from_wheels=opts.from_wheels,
            distro_packages=opts.distro_packages,
            check_user=opts.check_user,
            allowed_tools=tuple(opts.allowed_tools),
        )
    )


def _managed(opts: InstallOptions, gens: Generations) -> list[Path]:
    """Return the folders venvship manages on this host: no interpreter may come from them."""
    return [opts.cache, gens.dest, gens.root, *(d for _, d, _ in cachestore.recorded_dests(opts.cache))]


def _prober(opts: InstallOptions, gens: Generations) -> Callable[[str], Interpreter]:
    """Return how selection finds the interpreter for an artifact's python: the host's, vetted.

    A ``--python`` stands for every python the artifact names, so it is probed first and alone:
    when it cannot be used, that is the error, not that each of the artifact's pythons is missing.
    """
    if opts.python:
        try:
            asked = probe_python(trust.host_python(opts.python, managed=_managed(opts, gens)))
        except TrustError:
            raise
        except VenvshipError as exc:
            raise InstallError(f"--python {opts.python}: {exc}") from exc
        return lambda executable: asked

    def probe(executable: str) -> Interpreter:
        return probe_python(trust.host_python(executable, managed=_managed(opts, gens)))

    return probe


def _would_change(
    gens: Generations, live: State | None, selected: Selected, *, rebuild: bool
) -> InstallResult:
    kept = live is not None and not rebuild and live.digest == selected.digest
    return InstallResult(
        changed=True,
        dest=str(gens.dest),
        digest=selected.digest,
        previous_digest=live.digest if live else "",
        generation=live.generation if kept and live else "",
        packages=len(selected.config.lock),
        facts_written=False,  # --check writes nothing, facts included
        check=True,
    )


def _install_locked(
    ref: Ref,
    opts: InstallOptions,
    gens: Generations,
    source: Source,
    cache: Layout,
    selected: Selected,
    signers: Mapping[str, tuple[str, ...]],
) -> InstallResult:
    # Imported here, on the way to a new generation: the no-op install stays fast without them.
    from ..distro import ensure
    from . import store

    config = selected.config
    live = _live_state(gens)  # again, under the lock: a concurrent run may have finished
    if live and not opts.rebuild and live.digest == selected.digest:
        if (gens.path(live.generation) / FACTS_PENDING).exists():
            return _finish(opts, gens, cache, live, changed=True)
        return _result(gens, live, changed=False, facts_written=False)
    removed = gens.clean_partials()
    if removed:
        logger.info("removed unfinished generations: %s", ", ".join(removed))
    cache.remove_stale_temp()
    store.remove_stale(cache.root)
    made = None if opts.rebuild else _made_before(gens, selected.digest, live)
    if made is not None:
        return _switch_back(opts, gens, cache, replace(made, signers=signers), live)
    python = _preflight(opts, gens, cache, selected)  # everything this host lacks, before any work
    _pull(source, cache, selected, from_wheels=opts.from_wheels)
    pause_point("pulled")
    if opts.distro_packages:
        ensure("install", **_distro_args(config))
    return _new_generation(ref, opts, gens, cache, selected, live=live, python=python, signers=signers)


def _pull(source: Source, cache: Layout, selected: Selected, *, from_wheels: bool) -> None:
    """Pull the blobs the install needs into ``cache``, saying how far it got; a full cache is
    one error line."""
    from .pull import needed, pull

    missing = [d for d in needed(selected, from_wheels=from_wheels) if not cache.has_blob(d.digest, d.size)]
    size = sum(d.size for d in missing)
    with disk_space(cache.root, needed=size), activity("pulling", total=len(missing)) as report:

        def on_blob(n: int, total: int, done: int) -> None:
            report(n, f"{human_size(done)} of {human_size(size)}")
            if n == 1 and total > 1:
                pause_point("pulling")  # the test seam for a kill in the middle of a pull

        fetched = pull(source, cache, selected, from_wheels=from_wheels, on_blob=on_blob)
    logger.info("pulled %d blobs into %s", fetched, cache.root)


def _new_generation(
    ref: Ref,
    opts: InstallOptions,
    gens: Generations,
    cache: Layout,
    selected: Selected,
    *,
    live: State | None,
    python: str,
    signers: Mapping[str, tuple[str, ...]],
) -> InstallResult:
    """Stage, check, commit and switch to a new generation of ``selected``; write its facts.

    ``signers``: per digest, the keys that verified it (recorded for the no-op's policy check).
    """
    from .pull import referenced_digests

    config = selected.config
    generation = gens.new_id(selected.digest)
    layers = () if opts.from_wheels or config.layers is None else config.layers.distributions
    how = f"installing with {config.install_tool}" if opts.from_wheels else "installing"
    with disk_space(cache.root, gens.root), activity(how, total=len(layers)) as report:
        unpacked = itertools.count(1)

        def on_layer(layer: LayerInfo) -> None:
            n = next(unpacked)  # called from the unpacking threads: count() hands out each n once
            report(n, "then the health check" if n == len(layers) else layer.name)

        staged = _stage(opts, gens, cache, config, python, generation, on_layer)
    state = State(
        generation=generation,
        digest=selected.digest,
        ref_digest=selected.ref_digest,
        reference=str(ref),
        name=config.name,
        version=config.version,
        created=time.time(),
        previous_digest=live.digest if live else "",
        previous_generation=live.generation if live else "",
        tools={"installer": staged.tool, "venvship": __version__, "python": sys.version.split()[0]},
        lock=tuple(f"{w.name}=={w.version}" for w in config.lock),
        blobs=tuple(referenced_digests(selected, from_wheels=opts.from_wheels)),
        facts=config.facts,
        dist_infos=staged.dist_infos,
        signers=signers,
    )
    staging = gens.stage_path(generation)
    mark_facts_pending(staging)  # a kill after the switch: the rerun writes the facts
    gens.write_state(staging, state)
    gens.commit(staging, generation)
    _record_refs(gens, cache)
    pause_point("committed")
    _adopt_plain_dir(gens, opts.facts_dir, state, adopt=opts.adopt)
    gens.switch(generation)
    pause_point("switched")
    return replace(_finish(opts, gens, cache, state, changed=True), bytecode=staged.bytecode)


def _stage(
    opts: InstallOptions,
    gens: Generations,
    cache: Layout,
    config: VenvConfig,
    python: str,
    generation: str,
    on_layer: Callable[[LayerInfo], None],
) -> Staged:
    """Make and check ``generation`` in its staging folder (discarded if anything fails)."""
    from .staging import StageJob, stage_generation
    from .venvs import install_env

    return stage_generation(
        StageJob(
            gens=gens,
            generation=generation,
            cache=cache,
            config=config,
            python=python,
            env=install_env(config.install_env, privileged=True),
            check_env=install_env(config.install_env, privileged=False),  # an allow-list
            compile=opts.compile,
            from_wheels=opts.from_wheels,
            allowed_tools=opts.allowed_tools,
            check_command=opts.check_command,
            check_user=opts.check_user,
            on_layer=on_layer,
        )
    )


def _made_before(gens: Generations, digest: str, live: State | None) -> State | None:
    """Return the newest intact generation of ``digest`` that is not the live one, if any."""
    current = live.generation if live else None
    for state in reversed(gens.all()):
        same = state.digest == digest and state.generation != current
        if same and gens.intact(state.generation) and gens.complete(state):
            return state
    return None


def _switch_back(
    opts: InstallOptions, gens: Generations, cache: Layout, state: State, live: State | None
) -> InstallResult:
    """Switch to the generation of ``state`` (the same artifact, made before): nothing is built.

    Its venv stays as it is; its state now names the generation switched away from as the
    previous one (what a rollback returns to), and the facts are written as for an install.
    Runtime distro packages are not ensured again, as for a rollback: it was made on this host.
    """
    logger.info("generation %s holds this artifact already: switching back to it", state.generation)
    state = replace(
        state,
        previous_digest=live.digest if live else "",
        previous_generation=live.generation if live else "",
    )
    folder = gens.path(state.generation)
    mark_facts_pending(folder)  # a kill after the switch: the rerun writes the facts
    gens.write_state(folder, state)
    _adopt_plain_dir(gens, opts.facts_dir, state, adopt=opts.adopt)
    gens.switch(state.generation)
    pause_point("switched")
    return _finish(opts, gens, cache, state, changed=True)


def _finish(
    opts: InstallOptions, gens: Generations, cache: Layout, state: State, *, changed: bool
) -> InstallResult:
    """Write facts for the live generation, clear its pending mark, prune; return the result."""
    from . import store

    with disk_space(opts.facts_dir):
        written = write_live_facts(gens, state, facts_dir=opts.facts_dir)
    with contextlib.suppress(FileNotFoundError):
        (gens.path(state.generation) / FACTS_PENDING).unlink()
    with store.unlinking(cache.root, [b for s in gens.to_prune(opts.keep) for b in s.blobs]):
        pruned = gens.prune(opts.keep)
    if pruned:
        logger.info("pruned generations: %s", ", ".join(pruned))
        _record_refs(gens, cache)
    return _result(gens, state, changed=changed, facts_written=bool(written))


def _adopt_plain_dir(gens: Generations, facts_dir: Path, state: State, *, adopt: bool) -> None:
    """Keep a venv made without venv-pull as a generation, with the facts that describe it now."""
    from .facts import facts_now

    def described() -> tuple[Fact, ...]:
        try:
            trust.check_existing([(facts_dir, "the facts folder")])
        except VenvshipError:  # root reads nothing from a folder others can write
            return tuple(replace(f, value="") for f in state.facts)
        return facts_now(facts_dir, state.facts)

    gens.adopt_plain_dir(described, adopt=adopt)


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


def _record_refs(gens: Generations, cache: Layout) -> None:
    blobs: set[str] = set()
    for state in gens.all():
        blobs.update(state.blobs)
    cachestore.record_refs(cache.root, gens.dest, blobs)
