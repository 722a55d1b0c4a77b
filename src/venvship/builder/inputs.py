"""A recipe's build inputs on disk (flat requirement and constraint files) and their digest."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..errors import RecipeError
from ..recipe.pylockfile import LockFile, read_lock
from ..recipe.recipefile import Recipe
from ..recipe.requirements import Expanded, expand, is_remote, is_url, read_local
from ..redact import redact_url
from .fetch import fetch_url


@dataclass(frozen=True)
class Inputs:
    """Files handed to pip, and the digest of everything that decides the build's result."""

    requirements: tuple[str, ...]
    constraint_args: tuple[str, ...]
    global_args: tuple[str, ...]
    global_constraints: tuple[str, ...]  # the global constraint lines, includes expanded
    digest: str
    builder_digest: str  # what the builder venv depends on: not the packages, only the tools
    files: tuple[
        tuple[str, str], ...
    ] = ()  # every constraint or requirement file read: (where from, sha256 hex)
    constraints: tuple[str, ...] = ()  # the source constraint lines, includes expanded
    lock: LockFile | None = None  # the recipe's PEP 751 lock: the closure, with no resolve


def _read(target: str, where: str) -> bytes:
    """Read an included file: local paths and ``file:`` URLs here, remote URLs fetched."""
    if is_remote(target):
        return fetch_url(target, where)
    if is_url(target) and not target.lower().startswith("file:"):
        raise RecipeError(where, f"{redact_url(target)}: only http(s) and file: URLs are read")
    return read_local(target, where)


def _expanded(recipe: Recipe) -> tuple[Expanded, Expanded]:
    """Return (the recipe's packages and source constraints, its global constraints), includes expanded.

    Remote files are fetched once here, so their content, not their URL, decides whether anything
    changed; files included by included files count too.
    """
    base = str(recipe.folder.resolve())
    where = f"{recipe.path}: venv"
    main = expand(
        [(line, f"{where}.packages[{n}]") for n, line in enumerate(recipe.packages)],
        kind="requirements",
        base=base,
        read=_read,
    )
    expand(
        [(line, f"{where}.constraints[{n}]") for n, line in enumerate(recipe.constraints)],
        kind="constraints",
        base=base,
        read=_read,
        into=main,
    )
    glob = expand(
        [(line, f"{where}.global-constraints[{n}]") for n, line in enumerate(recipe.global_constraints)],
        kind="constraints",
        base=base,
        read=_read,
    )
    return main, glob


def _url_pins_first(requirements: list[str], constraints: list[str]) -> list[str]:
    """Return ``requirements`` where a URL constraint (``name @ git+URL@sha``) replaces the bare-name
    requirement of its distribution, so that even an older pip takes the source it names."""
    pinned = {}
    for line in constraints:
        req = Requirement(line.split(" --", 1)[0])
        if req.url:
            pinned[canonicalize_name(req.name)] = line
    out = []
    for line in requirements:
        req = Requirement(line.split(" --", 1)[0])
        out.append(pinned.get(canonicalize_name(req.name), line) if not req.url else line)
    return sorted(dict.fromkeys(out))


def prepare(recipe: Recipe, workdir: Path) -> Inputs:
    """Write flat requirement and constraint files for ``recipe`` into ``workdir``; return their digest.

    Example: ``prepare(load_recipe(Path("recipes/demo.toml")), Path("/tmp/work")).digest``
    """
    workdir.mkdir(parents=True, exist_ok=True)
    main, glob = _expanded(recipe)
    requirements = _url_pins_first(main.requirements + glob.requirements, main.constraints)
    options = list(dict.fromkeys(main.options + glob.options))
    source_file, global_file = workdir / "source-constraints.txt", workdir / "global-constraints.txt"
    global_file.write_text("".join(f"{c}\n" for c in (*glob.options, *glob.constraints)))
    source_file.write_text("".join(f"{c}\n" for c in (*options, *main.constraints)))
    global_args = ("-c", str(global_file))
    lock = read_lock(recipe.lock) if recipe.lock is not None else None
    lock_files = [(str(lock.path), lock.sha256)] if lock is not None else []

    def digest(*parts: object) -> str:
        hasher = hashlib.sha256()
        for _, content in (*main.files, *glob.files):
            hasher.update(hashlib.sha256(content).digest())
        hasher.update(json.dumps(parts, sort_keys=True, default=list).encode())
        return "sha256:" + hasher.hexdigest()

    # Paths differ between machines; the files' contents were hashed, their lines are in the lists.
    tools = [
        glob.constraints,
        glob.options,
        main.constraints,
        options,
        recipe.build_requirements,
        recipe.build.pip_args,
        sorted((recipe.build.env or {}).items()),
        _pip_settings(ignore_config=recipe.ignore_pip_config),
    ]
    return Inputs(
        requirements=tuple(requirements),
        constraint_args=(*global_args, "-c", str(source_file)),
        global_args=global_args,
        global_constraints=tuple(glob.constraints),
        digest=digest(
            tools,
            requirements,
            recipe.build.distro_packages,
            recipe.install_tool,
            recipe.python,
            *([lock.sha256] if lock is not None else []),
            # Only when asked for: a lock's earlier builds stay unchanged.
            *(
                [[recipe.lock_extras, recipe.lock_groups]]
                if recipe.lock_extras or recipe.lock_groups is not None
                else []
            ),
        ),
        builder_digest=digest(tools),
        files=tuple(
            (name, hashlib.sha256(content).hexdigest()) for name, content in (*main.files, *glob.files)
        )
        + tuple(lock_files),
        constraints=tuple(main.constraints),
        lock=lock,
    )


# Where pip reads settings beyond the command line (its site, XDG and user files): the build's
# environment changes what it resolves as much as the recipe does.
_PIP_CONFIG_FILES = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.config/pip/pip.conf", "~/.pip/pip.conf")
# Settings that change how pip talks, not what it installs.
_PIP_QUIET_SETTINGS = frozenset(
    "PIP_" + name
    for name in [
        "CACHE_DIR",
        "NO_CACHE_DIR",
        "PROGRESS_BAR",
        "QUIET",
        "VERBOSE",
        "NO_INPUT",
        "DISABLE_PIP_VERSION_CHECK",
        "NO_COLOR",
        "LOG",
        "TIMEOUT",
        "RETRIES",
        "ROOT_USER_ACTION",
    ]
)


def _pip_settings(*, ignore_config: bool) -> list[tuple[str, str]]:
    """Return the digests of the ``PIP_*`` variables and pip's config files this build's pip reads,
    so a change to any of them is a changed input, never an ``unchanged`` build."""
    settings = [
        (k, hashlib.sha256(v.encode()).hexdigest())
        for k, v in os.environ.items()
        if k.startswith("PIP_") and k not in _PIP_QUIET_SETTINGS
    ]
    files = [] if ignore_config else [os.environ.get("PIP_CONFIG_FILE", ""), *_PIP_CONFIG_FILES]
    for name in filter(None, files):
        try:
            settings.append((name, hashlib.sha256(Path(name).expanduser().read_bytes()).hexdigest()))
        except OSError:
            continue  # absent (or unreadable, and so unread by pip too)
    return sorted(settings)
