"""Wheels for a resolved closure: an immutable local cache first, then a previous artifact, then pip.

The cache never overwrites a file in place: a wheel is stored under its own sha256, and a
source (index file hash, VCS commit, sdist hash) maps to the wheel it produced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import unquote, urlparse

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from .._fsutil import atomic_write, mark_used
from .._log import activity, progress
from ..artifact.documents import Wheel
from ..errors import BuildError, ProcessError
from .piplog import PipFailure, explain, log_args
from .resolve import Resolved
from .sandbox import Sandbox
from .toolvenv import Builder

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


@dataclass(frozen=True)
class CachedWheel:
    """A wheel file in the local cache and what it is."""

    path: Path
    wheel: Wheel


class WheelCache:
    """The immutable local wheel cache (``<cache>/wheels``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _source_file(self, key: str) -> Path:
        return self.root / "sources" / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def by_sha256(self, sha256: str) -> Path | None:
        folder = self.root / "sha256" / sha256
        if folder.is_dir():
            for f in folder.iterdir():
                if f.suffix == ".whl":
                    mark_used(f)
                    return f
        return None

    def lookup(self, key: str) -> CachedWheel | None:
        """Return the wheel recorded for source ``key`` if it is still in the cache."""
        try:
            data = json.loads(self._source_file(key).read_text())
        except (OSError, ValueError):
            return None
        path = self.root / "sha256" / data["sha256"] / data["filename"]
        if not path.is_file() or path.stat().st_size != data["size"]:
            return None
        # Keyed by content and checked by content: a file changed since it was stored is a miss.
        if file_sha256(path) != data["sha256"]:
            return None
        mark_used(path)
        mark_used(self._source_file(key))
        return CachedWheel(path=path, wheel=Wheel(**data))

    def store(self, path: Path, *, name: str, version: str, key: str | None) -> CachedWheel:
        """Add the wheel at ``path`` (verified name and version) and record it for ``key``."""
        try:
            wname, wversion, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename as exc:
            raise BuildError(f"{path.name}: not a wheel file name ({exc})") from exc
        if canonicalize_name(wname) != canonicalize_name(name) or wversion != Version(version):
            raise BuildError(f"{path.name}: expected a wheel of {name} {version}")
        sha = file_sha256(path)
        dest = self.root / "sha256" / sha / path.name
        # A file already there is taken only if it still is what its name says.
        if not dest.is_file() or file_sha256(dest) != sha:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
            os.close(fd)
            try:
                shutil.copyfile(path, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        wheel = Wheel(name=name, version=version, filename=path.name, sha256=sha, size=dest.stat().st_size)
        if key is not None:
            atomic_write(self._source_file(key), json.dumps(wheel.to_json(), sort_keys=True).encode())
        return CachedWheel(path=dest, wheel=wheel)


@dataclass
class Acquired:
    """What acquiring wheels did, by how each wheel was obtained."""

    wheels: list[CachedWheel] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reuse:
    """A previous artifact's wheels by source key, each with a function that puts it into a local file.

    ``signed``: the artifact's signature verified with a key the build trusts. Only then are its
    wheels built from sdists or VCS sources (which no index hash vouches for) taken; wheels from an
    index are taken only when their sha256 is the one this resolution got from the index.
    """

    wheels: Mapping[str, tuple[Wheel, Callable[[Wheel, Path], None]]]
    signed: bool = False


def _matches_index(item: Resolved, path: Path) -> bool:
    """Whether ``path`` is the file the index named for ``item`` (always true for built wheels)."""
    if item.kind != "wheel":
        return True
    return item.sha256 is not None and file_sha256(path) == item.sha256


def _reusable(item: Resolved, prev: Wheel, reuse: Reuse) -> bool:
    if item.kind == "wheel":
        return item.sha256 is not None and prev.sha256 == item.sha256
    return reuse.signed and item.cacheable


def cache_key(item: Resolved, platform_key: str) -> str:
    """Return the cache key of ``item``: built wheels depend on the platform, index wheels do not."""
    return item.source if item.kind == "wheel" else f"{platform_key}|{item.source}"


def acquire(
    items: Sequence[Resolved],
    *,
    builder: Builder,
    cache: WheelCache,
    platform_key: str,
    pip_args: Sequence[str],
    workdir: Path,
    sandbox: Sandbox,
    rebuild: bool = False,
    reuse: Reuse | None = None,
) -> Acquired:
    """Return a cached wheel for every item, building or downloading only what is missing.

    pip downloads and builds in ``sandbox``; what it leaves is copied into ``workdir`` and checked.
    """
    result = Acquired()
    found: dict[str, CachedWheel] = {}
    to_fetch: list[Resolved] = []
    for item in items:
        key = cache_key(item, platform_key)
        hit = cache.lookup(key) if item.cacheable and not rebuild else None
        if hit is not None and _matches_index(item, hit.path):
            found[item.source] = hit
            result.cached.append(hit.wheel.filename)
            continue
        prev_entry = reuse.wheels.get(item.source) if reuse and not rebuild else None
        if reuse and prev_entry and _reusable(item, prev_entry[0], reuse):
            prev, fetch = prev_entry
            tmp = workdir / "reuse" / prev.filename
            tmp.parent.mkdir(parents=True, exist_ok=True)
            fetch(prev, tmp)
            # The artifact's own sha256 is only its word: the file itself must be the index's.
            if _matches_index(item, tmp):
                found[item.source] = cache.store(tmp, name=item.name, version=item.version, key=key)
                result.reused.append(prev.filename)
                continue
        to_fetch.append(item)

    downloads = [i for i in to_fetch if i.kind == "wheel"]
    builds = [i for i in to_fetch if i.kind != "wheel"]
    fetched = _download(
        downloads, builder=builder, pip_args=pip_args, workdir=workdir / "dl", sandbox=sandbox
    )
    for item, path in fetched:
        found[item.source] = cache.store(
            path, name=item.name, version=item.version, key=cache_key(item, platform_key)
        )
        result.downloaded.append(path.name)
    for n, item in enumerate(progress(builds, label="building wheels")):
        path = _build(
            item,
            builder=builder,
            pip_args=pip_args,
            workdir=workdir / f"build-{n}",
            sandbox=sandbox,
            rebuild=rebuild,
        )
        build_key = cache_key(item, platform_key) if item.cacheable else None
        found[item.source] = cache.store(path, name=item.name, version=item.version, key=build_key)
        result.built.append(path.name)
    result.wheels = [found[i.source] for i in items]
    return result


def _local_file(spec_url: str) -> Path | None:
    parsed = urlparse(spec_url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _readable_spec(item: Resolved, sandbox: Sandbox, name: str) -> str:
    """Return ``item``'s spec, a local archive in it copied where the build user can read it (its
    original may sit in a folder of root's); the ``#sha256=`` pip checks stays on it."""
    url, _, fragment = item.spec.partition(" @ ")[2].partition("#")
    local = _local_file(url)
    if local is None or not local.is_file():
        return item.spec
    copy = sandbox.shared(f"{name}-source") / local.name
    shutil.copyfile(local, copy)
    copy.chmod(0o644)
    return f"{item.name} @ {copy.as_uri()}" + (f"#{fragment}" if fragment else "")


def _with_network(failure: PipFailure) -> str:
    """Return ``failure``'s lines, led by the pages pip could not fetch when there were any."""
    if not failure.unreachable:
        return failure.detail
    pages = "".join(f"\n  {page}" for page in failure.unreachable)
    return f"cannot reach the package index (check the network):{pages}\n{failure.detail}".rstrip()


def _download(
    items: Sequence[Resolved], *, builder: Builder, pip_args: Sequence[str], workdir: Path, sandbox: Sandbox
) -> list[tuple[Resolved, Path]]:
    out = []
    remote = []
    for item in items:
        url = item.spec.split(" @ ", 1)[1].split("#", 1)[0]
        local = _local_file(url)
        if local is not None and local.is_file():
            out.append((item, local))
        else:
            remote.append(item)
    if remote:
        outbox = sandbox.outbox("download")
        log = outbox / "download.log"

        def downloaded() -> int:
            return sum(1 for _ in outbox.glob("*.whl"))

        try:
            with activity("downloading wheels", total=len(remote), poll=downloaded):
                sandbox.run(
                    builder.pip(
                        "download",
                        "--no-deps",
                        "--quiet",
                        *log_args(log),
                        "-d",
                        outbox,
                        *pip_args,
                        *(i.spec for i in remote),
                    ),
                    env=builder.env,
                    kind="download",
                )
        except ProcessError as exc:
            failure = explain(exc.output, log)
            raise BuildError(f"downloading wheels failed:\n{_with_network(failure)}") from exc
        taken = [sandbox.take(p, workdir) for p in sorted(outbox.glob("*.whl"))]
        by_sha = {file_sha256(p): p for p in taken}
        for item in remote:
            path = by_sha.get(item.sha256 or "")
            if path is None:
                raise BuildError(
                    f"{item.name} {item.version}: downloaded wheel does not match sha256 {item.sha256}"
                )
            out.append((item, path))
    for item, path in out:
        if item.sha256 and file_sha256(path) != item.sha256:
            raise BuildError(f"{path}: sha256 differs from the index's {item.sha256}")
    return out


def _build(
    item: Resolved,
    *,
    builder: Builder,
    pip_args: Sequence[str],
    workdir: Path,
    sandbox: Sandbox,
    rebuild: bool,
) -> Path:
    shutil.rmtree(workdir, ignore_errors=True)
    outbox = sandbox.outbox(workdir.name)
    log = sandbox.outbox(f"{workdir.name}-log") / "pip.log"  # a folder of its own: not taken as a wheel
    extra = ["--no-cache-dir"] if rebuild else []
    spec = _readable_spec(item, sandbox, workdir.name)
    try:
        sandbox.run(
            builder.pip(
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--quiet",
                *log_args(log),
                "-w",
                outbox,
                *extra,
                *pip_args,
                spec,
            ),
            env=builder.env,
            kind="build",
        )
    except ProcessError as exc:
        failure = explain(exc.output, log)
        network = _with_network(PipFailure(detail="", unreachable=failure.unreachable))
        raise BuildError(
            f"building a wheel of {item.name} {item.version} failed:\n{exc.output[-3000:]}\n{network}".rstrip()
        ) from exc
    wheels = list(outbox.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"building {item.name} gave {len(wheels)} wheels, expected 1")
    return sandbox.take(wheels[0], workdir)
