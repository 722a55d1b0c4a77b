"""A recipe's PEP 751 lock in place of a resolve: the packages it selects for this build's
platform, as the resolve would have returned them, so that wheels, layers, SBOM and signing
take them unchanged.

Which packages apply is the lock's to say (its ``environments``, ``requires-python`` and
markers), evaluated with ``packaging.pylock`` against the marker environment and wheel tags of
the interpreter being built for, as that interpreter's own pip reports them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Union
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name

from ..errors import BuildError, ProcessError, RecipeError
from ..recipe.pylockfile import LockFile
from ..redact import redact, redact_url
from .resolve import Resolved, SourceKind, download_url, resolve
from .toolvenv import Builder
from .wheels import file_sha256

if TYPE_CHECKING:
    from packaging.pylock import (
        Package,
        PackageArchive,
        PackageDirectory,
        PackageSdist,
        PackageVcs,
        PackageWheel,
    )

    from .sandbox import Sandbox

    Source = Union[PackageWheel, PackageSdist, PackageArchive, PackageVcs, PackageDirectory]

# Run by the builder venv's python (the target interpreter): its pip's own packaging says which
# tags it installs and what its markers see. pip is venvship's pinned one (pins.PIP).
_PROBE = """
import json
from pip._vendor.packaging import markers, tags
print(json.dumps({"environment": markers.default_environment(), "tags": [str(t) for t in tags.sys_tags()]}))
"""


def _target(builder: Builder, sandbox: Sandbox) -> tuple[dict[str, str], list[Tag]]:
    """Return the marker environment and the wheel tags (best first) of the builder's interpreter."""
    try:
        # As the build user: the builder venv holds build requirements, whose .pth files run.
        proc = sandbox.run(
            [builder.python, "-I", "-c", _PROBE], env=builder.env, kind="probe", merge_stderr=False
        )
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        environment = {str(k): str(v) for k, v in data["environment"].items()}
        tags = [Tag(*str(t).split("-", 2)) for t in data["tags"]]
    except (ProcessError, ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
        raise BuildError(
            f"{builder.python}: cannot read its marker environment and wheel tags: {exc}"
        ) from exc
    return environment, tags


def _file_url(lock: LockFile, url: str | None, path: str | None) -> str:
    """Return the URL of a lock entry's file: ``path`` is relative to the lock's folder."""
    if url is not None:
        return url
    assert path is not None  # packaging.pylock requires one of the two
    return (lock.folder / path).resolve().as_uri()


def _local(url: str) -> Path | None:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _resolved(lock: LockFile, index: int, package: Package, source: Source) -> Resolved:
    """Return the lock's entry as the resolve returns a distribution, its local file checked now."""
    from packaging.pylock import PackageArchive, PackageDirectory, PackageVcs, PackageWheel

    name, version = str(package.name), str(package.version or "")
    if isinstance(source, PackageDirectory):  # refused when the lock was read; kept out here too
        raise RecipeError(
            f"{lock.path}: packages[{index}].directory", f"{name}: a local directory is pinned by no hash"
        )
    if isinstance(source, PackageVcs):
        repo = _file_url(lock, source.url, source.path)
        ref = f"{source.type}+{repo}@{source.commit_id}"
        spec = f"{name} @ {ref}" + (f"#subdirectory={source.subdirectory}" if source.subdirectory else "")
        # The source is published (the config's provenance): a token in the lock's URL is not.
        public = redact_url(repo)
        return Resolved(
            name=name,
            version=version,
            kind="vcs",
            spec=spec,
            source=f"{source.type}+{public}@{source.commit_id}",
            sha256=None,
        )
    url = _file_url(lock, source.url, source.path)
    sha = source.hashes["sha256"]
    filename = urlparse(url).path.rsplit("/", 1)[-1]
    kind: SourceKind = "wheel" if isinstance(source, PackageWheel) or filename.endswith(".whl") else "sdist"
    local = _local(url)
    # A local file is checked before pip sees it: a mismatch is one line naming the lock's key.
    if local is not None and local.is_file() and file_sha256(local) != sha:
        raise RecipeError(f"{lock.path}: packages[{index}]", f"{local} does not match its sha256 in the lock")
    # pip checks a "#sha256=" fragment when it fetches the file to build it; wheels are checked
    # against ``sha256`` wherever they come from.
    spec = f"{name} @ {url}" if kind == "wheel" else f"{name} @ {url}#sha256={sha}"
    subdirectory = getattr(source, "subdirectory", None)  # an archive's project may sit in a folder of it
    if subdirectory:
        spec += f"&subdirectory={subdirectory}"
    return Resolved(
        name=name,
        version=version,
        kind=kind,
        spec=spec,
        source=f"{kind}:sha256:{sha}",
        sha256=sha,
        # An archive is a direct URL; a wheel or sdist entry comes from the lock's index.
        url=download_url(url) if isinstance(source, PackageArchive) else None,
    )


def _uncovered(lock: LockFile, message: str, platform: str) -> RecipeError:
    """Return the error for a lock that does not cover ``platform``, naming the key at fault."""
    at = re.search(r"packages\[\d+\]", message)
    if "environments" in message:
        key = "environments"
    elif at is not None:
        key = at.group(0)
    else:
        key = "requires-python"
    return RecipeError(f"{lock.path}: {key}", f"the lock does not cover {platform}: {message}")


def locked_closure(
    lock: LockFile,
    builder: Builder,
    *,
    platform: str,
    packages: tuple[str, ...] = (),
    extras: tuple[str, ...] = (),
    groups: tuple[str, ...] | None = None,
    constraints: tuple[str, ...] = (),
    global_constraints: tuple[str, ...] = (),
    where: str = "",
    pip_args: tuple[str, ...] = (),
    sandbox: Sandbox,
) -> list[Resolved]:
    """Return the distributions ``lock`` selects for ``builder``'s interpreter, sorted by name,
    checked against the recipe's ``packages`` and ``constraints`` (``where``: the recipe's venv table);
    ``extras`` and ``groups`` are the lock's extras and dependency groups to install (None: its default-groups).

    Example: ``locked_closure(read_lock(Path("pylock.toml")), builder, platform="debian-12-amd64-cp311")``
    """
    from packaging.pylock import PylockSelectError

    environment, tags = _target(builder, sandbox)
    target = f"{platform} (python {environment.get('python_full_version', '?')})"
    try:
        selected = list(
            lock.lock.select(
                environment=environment,  # type: ignore[arg-type]
                tags=tags,
                extras=extras,
                dependency_groups=groups,
            )
        )
    except PylockSelectError as exc:
        raise _uncovered(lock, str(exc), target) from exc
    indexes = {id(p): n for n, p in enumerate(lock.lock.packages)}
    items = [_resolved(lock, indexes[id(p)], p, s) for p, s in selected]
    if any(not r.version for r in items):
        items = _versioned(lock, items, builder, pip_args=pip_args, sandbox=sandbox)
    items.sort(key=lambda r: r.name.lower())
    checks = {"packages": packages, "constraints": constraints, "global-constraints": global_constraints}
    _check_against_lock(items, environment, checks, where=where)
    return items


def _versioned(
    lock: LockFile, items: list[Resolved], builder: Builder, *, pip_args: tuple[str, ...], sandbox: Sandbox
) -> list[Resolved]:
    """Return ``items`` with the versions a VCS or archive entry left out read from its metadata."""
    unversioned = [r for r in items if not r.version]
    found = resolve(
        builder,
        [r.spec for r in unversioned],
        constraint_args=(),
        pip_args=pip_args,
        sandbox=sandbox,
        name="lock-versions",
        extra_args=("--no-deps",),
    )
    versions = {canonicalize_name(r.name): r.version for r in found}
    out = []
    for item in items:
        if not item.version:
            version = versions.get(canonicalize_name(item.name))
            if version is None:
                raise RecipeError(
                    f"{lock.path}: packages",
                    f"{redact(item.spec)}: its source is not a distribution named {item.name}",
                )
            item = dataclasses.replace(item, version=version)
        out.append(item)
    return out


def _check_against_lock(
    closure: list[Resolved],
    environment: dict[str, str],
    checks: dict[str, tuple[str, ...]],
    *,
    where: str,
) -> None:
    """Raise RecipeError if the recipe's packages or constraints (beside a lock) disagree with it:
    each package must be locked, and each locked version allowed by every constraint naming it."""
    locked = {canonicalize_name(r.name): r for r in closure}
    for kind, lines in checks.items():
        for line in lines:
            try:
                req = Requirement(line.split(" --", 1)[0])
            except InvalidRequirement:
                continue  # an include (expanded already) or a pip option
            if req.marker is not None and not req.marker.evaluate({**environment, "extra": ""}):
                continue
            item = locked.get(canonicalize_name(req.name))
            if item is None:
                if kind == "packages":
                    raise RecipeError(f"{where}.packages", f"{req.name} is not in the lock")
                continue
            if req.url:
                raise RecipeError(f"{where}.{kind}", f"{line}: the lock names where {req.name} comes from")
            if not req.specifier.contains(item.version, prereleases=True):
                raise RecipeError(f"{where}.{kind}", f"{line}: the lock has {req.name} {item.version}")
