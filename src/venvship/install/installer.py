"""``venv-pull install``: select → pull → stage a generation → check → switch → state and facts."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .._fsutil import file_lock
from .._log import logger
from .._process import lend_fds
from ..artifact import Fact
from ..distro import ensure
from ..errors import InstallError
from ..hostinfo import find_python
from ..oci.layout import Layout
from ..oci.reference import parse_ref
from ..oci.source import Access, Source, open_source
from . import cachestore, clone
from .bytecode import BytecodeResult
from .facts import facts_with_own, write_facts
from .faults import pause_point
from .generations import FACTS_PENDING, PARTIAL, Generations, State
from .pull import pull, referenced_digests
from .select import BlobReader, Host, Selected, any_config, resolve_top, select
from .staging import StageJob, stage_generation
from .venvs import (
    install_env,
    installer_for,
    relocate,
)

if TYPE_CHECKING:
    from ..oci.auth import Credentials

VERSION = "0.1.0"


@dataclass(frozen=True)
class InstallOptions:
    """What ``venv-pull install`` was asked to do."""

    reference: str
    dest: Path | None = None
    cache: Path = Path("/var/cache/venvship")
    facts_dir: Path = Path("/etc/ansible/facts.d")
    keep: int = 2
    rebuild: bool = False
    compile: bool = True
    check: bool = False
    insecure: bool = False
    ca_file: str | None = None
    lock_timeout: float | None = None
    check_command: str | None = None
    distro_packages: bool = True
    credentials: Credentials | None = None  # registry login (else config.json); never shown


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

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "changed": self.changed,
            "dest": self.dest,
            "digest": self.digest,
            "previous_digest": self.previous_digest,
            "generation": self.generation,
            "packages": self.packages,
            "facts_written": self.facts_written,
        }
        if self.bytecode is not None:
            data["bytecode"] = self.bytecode.to_json()  # only when this run compiled a generation
        return data


def _result(gens: Generations, state: State, *, changed: bool, facts_written: bool) -> InstallResult:
    return InstallResult(
        changed=changed,
        dest=str(gens.dest),
        digest=state.digest,
        previous_digest=state.previous_digest,
        generation=state.generation,
        packages=len(state.lock),
        facts_written=facts_written,
    )


def _unchanged(gens: Generations, state: State) -> InstallResult:
    return _result(gens, state, changed=False, facts_written=False)


def _live_state(gens: Generations) -> State | None:
    current = gens.current_id()
    if current is None or not gens.intact(current):
        return None
    return gens.read_state(current)


def install(opts: InstallOptions) -> InstallResult:
    """Install the artifact ``opts.reference`` on this host (see DESIGN §5).

    Example: ``install(InstallOptions(reference="oci:build/oci:demo:1.0", dest=Path("/srv/demo")))``
    """
    ref = parse_ref(opts.reference)
    source = open_source(ref, Access(opts.insecure, opts.ca_file, opts.credentials))
    cache = Layout(opts.cache)  # created under the lock, once there is something to write
    reader = BlobReader(source, cache)
    try:
        top, top_raw = resolve_top(source, ref)
        dest = opts.dest or Path(any_config(reader, top_raw, where=str(ref)).install_path)
        if not dest.is_absolute():
            raise InstallError(f"{dest}: the destination must be an absolute path")
        if os.path.lexists(dest) and not dest.is_symlink() and not dest.is_dir():
            raise InstallError(f"{dest}: exists and is neither a directory nor a symlink; refusing it")
        gens = Generations(dest)
        # The cheap no-op check first: the same reference digest and an intact live generation.
        live = _live_state(gens)
        pending = live is not None and (gens.path(live.generation) / FACTS_PENDING).exists()
        if live and not opts.rebuild and not pending and live.ref_digest == top.digest:
            return _unchanged(gens, live)
        selected = select(reader, ref, host=Host.detect())
        if live and not opts.rebuild and not pending and live.digest == selected.digest:
            return _unchanged(gens, live)
        if opts.check:
            return InstallResult(
                changed=True,
                dest=str(gens.dest),
                digest=selected.digest,
                previous_digest=live.digest if live else "",
                generation=""
                if not live or opts.rebuild or live.digest != selected.digest
                else live.generation,
                packages=len(selected.config.lock),
                facts_written=bool(selected.config.facts),
                check=True,
            )
        # Cache lock first, then the destination's: prune takes them in the same order (no deadlock).
        # Children inherit the destination lock: if this run is killed, a pip or uv still writing into
        # the staging folder holds it until it exits, and a rerun waits instead of sharing the folder.
        with (
            cachestore.cache_lock(opts.cache, shared=True, timeout=opts.lock_timeout),
            file_lock(gens.lock_path, timeout=opts.lock_timeout) as lock_fd,
            lend_fds(lock_fd),
        ):
            pause_point("locked")
            return _install_locked(opts, gens, source, Layout.create(opts.cache), selected, str(ref))
    finally:
        reader.close()


def _install_locked(
    opts: InstallOptions,
    gens: Generations,
    source: Source,
    cache: Layout,
    selected: Selected,
    reference: str,
) -> InstallResult:
    config = selected.config
    live = _live_state(gens)  # again, under the lock: a concurrent run may have finished
    if live and not opts.rebuild and live.digest == selected.digest:
        if (gens.path(live.generation) / FACTS_PENDING).exists():
            return _finish(opts, gens, cache, live, changed=True)
        return _unchanged(gens, live)
    removed = gens.clean_partials()
    if removed:
        logger.info("removed unfinished generations: %s", ", ".join(removed))
    made = None if opts.rebuild else _made_before(gens, selected.digest, live)
    if made is not None:
        return _switch_back(opts, gens, cache, made, live)
    # "pulling": after the first blob of several, the test seam for a kill in the middle of a pull.
    fetched = pull(source, cache, selected, on_blob=lambda n: pause_point("pulling") if n == 1 else None)
    logger.info("pulled %d blobs into %s", fetched, cache.root)
    pause_point("pulled")
    if opts.distro_packages:
        ensure(
            "install",
            config.install_distro_packages,
            state="latest" if config.distro_package_state == "latest" else "present",
            cache_valid_time=config.distro_cache_valid_time,
        )
    generation = gens.new_id(selected.digest)
    staging, final = gens.path(generation + PARTIAL), gens.path(generation)
    build = StageJob(
        opts=opts,
        gens=gens,
        cache=cache,
        config=config,
        installer=installer_for(config, cache),
        env=install_env(config.install_env),
        python=find_python(config.python.executable),
        generation=generation,
    )
    origin = None if opts.rebuild or live is None else clone.origin(gens, live, cache=cache, config=config)
    bytecode = None
    if origin is not None:
        try:
            bytecode = stage_generation(build, live=live, origin=origin)
        except (InstallError, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            logger.warning("incremental generation failed (%s); installing every wheel instead", reason)
            origin = None
    if origin is None:
        bytecode = stage_generation(build, live=live, origin=None)
    installer = build.installer
    relocate(staging, old=staging, new=final)
    previous = live
    state = State(
        generation=generation,
        digest=selected.digest,
        ref_digest=selected.ref_digest,
        reference=reference,
        name=config.name,
        version=config.version,
        created=time.time(),
        previous_digest=previous.digest if previous else "",
        previous_generation=previous.generation if previous else "",
        tools={installer.name: installer.version(), "venvship": VERSION, "python": sys.version.split()[0]},
        lock=tuple(f"{w.name}=={w.version}" for w in config.lock),
        blobs=tuple(referenced_digests(selected)),
        facts=config.facts,
    )
    (staging / FACTS_PENDING).write_bytes(b"")
    gens.write_state(staging, state)
    gens.commit(staging, generation)
    _record_refs(gens, cache)
    pause_point("committed")
    gens.adopt_plain_dir()
    gens.switch(generation)
    pause_point("switched")
    return replace(_finish(opts, gens, cache, state, changed=True), bytecode=bytecode)


def _made_before(gens: Generations, digest: str, live: State | None) -> State | None:
    """Return the newest intact generation of ``digest`` that is not the live one, if any."""
    current = live.generation if live else None
    for state in reversed(gens.all()):
        if state.digest == digest and state.generation != current and gens.intact(state.generation):
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
    (folder / FACTS_PENDING).write_bytes(b"")  # a kill after the switch: the rerun writes the facts
    gens.write_state(folder, state)
    gens.adopt_plain_dir()
    gens.switch(state.generation)
    pause_point("switched")
    return _finish(opts, gens, cache, state, changed=True)


def _finish(
    opts: InstallOptions, gens: Generations, cache: Layout, state: State, *, changed: bool
) -> InstallResult:
    """Write facts for the live generation, clear its pending mark, prune; return the result."""
    written = write_live_facts(gens, state, facts_dir=opts.facts_dir)
    with contextlib.suppress(FileNotFoundError):
        (gens.path(state.generation) / FACTS_PENDING).unlink()
    pruned = gens.prune(opts.keep)
    if pruned:
        logger.info("pruned generations: %s", ", ".join(pruned))
        _record_refs(gens, cache)
    return _result(gens, state, changed=changed, facts_written=bool(written))


def write_live_facts(
    gens: Generations, state: State, *, facts_dir: Path, previous_digest: str | None = None
) -> list[Path]:
    """Write the recipe's facts of ``state`` plus venvship's own options; return files written."""
    facts: list[Fact] = list(state.facts)
    own = {
        "venvship_digest": state.digest,
        "venvship_previous_digest": state.previous_digest if previous_digest is None else previous_digest,
        "venvship_version": VERSION,
    }
    return write_facts(facts_dir, facts_with_own(facts, own))


def _record_refs(gens: Generations, cache: Layout) -> None:
    blobs: set[str] = set()
    for state in gens.all():
        blobs.update(state.blobs)
    cachestore.record_refs(cache.root, gens.dest, blobs)
