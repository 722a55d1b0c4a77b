"""Recipes: one TOML file per venv → a frozen :class:`Recipe`, with key-path errors.

Every variable of the original role has a home here (docs/reference/recipe.md has the table).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Literal, Mapping, Sequence, TypeVar, cast

from packaging.utils import canonicalize_name

from ..artifact.destinations import check_disjoint, check_install_path
from ..artifact.documents import Fact
from ..artifact.pipargs import check_install_pip_args
from ..artifact.venvconfig import MAX_CACHE_VALID_TIME, check_distro_package
from ..errors import RecipeError
from ._checks import DEFAULT_FACTS_FILE as DEFAULT_FACTS_FILE  # re-exported: import-role's default
from ._checks import (
    FACT_KEYS,
    Problems,
    check_lines,
    read_facts,
    read_name,
    read_version,
    templates,
)
from .pylockfile import read_lock
from .requirements import (
    Include,
    check_line,
    check_requirement,
    parse_line,
)
from .tablereader import TableReader, load_toml

InstallTool = Literal["pip", "uv"]
PackageState = Literal["present", "latest"]
DEFAULTS_FILE = "defaults.toml"
DEFAULT_BUILD_REQUIREMENTS = ("pbr", "setuptools", "wheel")
DEFAULT_PYTHONS: tuple[str, ...] = ("python3",)


@dataclass(frozen=True)
class SideOptions:
    """Options of one side (the build host or the targets): distro packages, extra pip args, environment."""

    distro_packages: tuple[str, ...] = ()
    pip_args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: what to put in one venv and how to build and install it."""

    path: Path
    name: str
    version: str
    install_path: PurePosixPath
    python: str  # the interpreter this recipe is built for now: the first of ``pythons``
    packages: tuple[str, ...]
    build_requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    global_constraints: tuple[str, ...]
    install_tool: InstallTool
    package_state: PackageState
    distro_package_state: PackageState
    distro_cache_valid_time: int
    ignore_pip_config: bool
    symlink_system_packages: tuple[str, ...]
    build: SideOptions
    install: SideOptions
    facts: tuple[Fact, ...]
    defaults_file: Path | None = None
    lock: Path | None = None  # a PEP 751 lock that replaces the resolve (absolute path)
    lock_extras: tuple[str, ...] = ()  # the lock's extras to install (its markers' ``extras``)
    lock_groups: tuple[str, ...] | None = None  # its dependency groups; None: its default-groups
    pythons: tuple[str, ...] = ()  # every interpreter to build for: one manifest each, one index

    @property
    def folder(self) -> Path:
        return self.path.parent

    def constraint_files(self) -> tuple[Path, ...]:
        """Return the local files named by ``--constraint``/``-r`` lines (absolute paths)."""
        files = []
        for line in self.constraints:
            parsed = parse_line(line, str(self.path))
            if isinstance(parsed, Include) and "://" not in parsed.target:
                files.append(Path(parsed.target))
        return tuple(files)


# -- the schema: the keys each table allows ------------------------------------------------------

_KEYS: dict[str, tuple[str, ...]] = {
    "": ("venv",),
    "venv": (
        "name",
        "version",
        "install-path",
        "python",
        "packages",
        "lock",
        "lock-extras",
        "lock-groups",
        "default-packages",
        "build-requirements",
        "build-requirements-extra",
        "constraints",
        "global-constraints",
        "install-tool",
        "package-state",
        "distro-package-state",
        "distro-cache-valid-time",
        "ignore-pip-config",
        "symlink-system-packages",
        "defaults",
        "build",
        "install",
        "facts",
    ),
    "venv.build": ("distro-packages", "pip-args", "env"),
    "venv.install": ("distro-packages", "pip-args", "env"),
    "venv.facts": FACT_KEYS,
}
# What a shared defaults file may set: everything but the venv's identity.
_DEFAULTS_KEYS = tuple(
    k
    for k in _KEYS["venv"]
    if k not in ("name", "version", "install-path", "defaults", "lock", "lock-extras", "lock-groups")
)

T = TypeVar("T")


def _distro_package(name: str, where: str) -> str:
    return check_distro_package(name, where=where, error=RecipeError)


def _defaults(path: Path, venv: TableReader, problems: Problems) -> tuple[TableReader | None, Path | None]:
    named = venv.get("defaults", str, None)
    if named is not None:
        file = (path.parent / named).resolve()
        if not file.is_file():
            raise venv.fail("defaults", f"defaults file not found: {named}")
    else:
        file = path.parent / DEFAULTS_FILE
        if not file.is_file() or file.resolve() == path.resolve():
            return None, None
    data = load_toml(file)
    for fault in templates(file, data):
        problems.template(fault)
    top = TableReader(file, data, "", report=problems.report)
    top.check_keys(("defaults",))
    reader = top.sub("defaults", _DEFAULTS_KEYS)
    return reader, file


class _Sources:
    """A recipe's ``[venv]`` table and its shared defaults, read together: the recipe wins for
    single values, the defaults come first in lists (their global constraints apply ahead)."""

    def __init__(self, path: Path, venv: TableReader, defaults: TableReader | None) -> None:
        self.path, self.venv, self.defaults = path, venv, defaults

    def tables(self) -> list[TableReader]:
        return [r for r in (self.defaults, self.venv) if r is not None]

    def pick(self, key: str, kind: type[T], default: T) -> T:
        if key in self.venv.data:
            return self.venv.get(key, kind, default)
        if self.defaults is not None and key in self.defaults.data:
            return self.defaults.get(key, kind, default)
        return default

    def given(self, key: str) -> bool:
        return any(key in t.data for t in self.tables())

    def literal(self, key: str, choices: tuple[str, ...], default: str) -> str:
        if key not in self.venv.data and self.defaults is not None and key in self.defaults.data:
            return self.defaults.choice(key, choices, default)
        return self.venv.choice(key, choices, default)

    def merged(self, key: str, check: Callable[[str, str], str] | None = None) -> tuple[str, ...]:
        return sum((t.str_list(key, check=check) for t in self.tables()), ())

    def lines(self, key: str) -> tuple[str, ...]:
        """Requirement-file lines: relative paths are taken beside the file that names them."""
        return sum((t.str_list(key, check=check_line(t.file.parent.resolve())) for t in self.tables()), ())

    def side(self, name: str, *, install_tool: str | None = None) -> SideOptions:
        """Return the build or install side's options; ``install_tool``: check the install pip-args
        against it (build pip-args run on the build host, under its operator: not restricted)."""
        tables = [t.sub(name, _KEYS[f"venv.{name}"]) for t in self.tables()]
        env: dict[str, str] = {}
        for t in tables:
            env.update(t.env("env"))
        pip_args: tuple[str, ...] = ()
        for t in tables:
            args = t.str_list("pip-args")
            if install_tool is not None:
                check_install_pip_args(args, tool=install_tool, where=t.where("pip-args"), error=RecipeError)
            pip_args += args
        packages = {p for t in tables for p in t.str_list("distro-packages", check=_distro_package)}
        return SideOptions(distro_packages=tuple(sorted(packages)), pip_args=pip_args, env=env)


def _pythons(src: _Sources) -> tuple[str, ...]:
    """Return the recipe's interpreters: ``python`` is one name or path, or a list of them."""
    table = (
        src.venv
        if "python" in src.venv.data
        else src.defaults
        if src.defaults and "python" in src.defaults.data
        else None
    )
    if table is None:
        return ("python3",)
    value = table.data["python"]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise table.fail("python", "must be an interpreter (python3, /usr/bin/python3.11) or a list of them")
    return tuple(dict.fromkeys(v.strip() for v in items))


def load_recipe(path: Path) -> Recipe:
    """Return the recipe at ``path``, merged with its shared defaults; raise RecipeError on any fault.

    Example: ``load_recipe(Path("recipes/demo.toml")).packages``
    """
    recipe = _load(path, Problems(collect=False))
    assert recipe is not None  # without collecting, a fault has been raised
    return recipe


def check_recipes(paths: Sequence[Path]) -> tuple[list[Recipe], list[RecipeError]]:
    """Return the valid recipes at ``paths`` and every fault found in them: each recipe read as far
    as it goes (not only to its first fault), then the install paths checked against each other.

    Example: ``recipes, faults = check_recipes(find_recipes([Path("recipes")]))``
    """
    recipes: list[Recipe] = []
    errors: list[RecipeError] = []
    for path in paths:
        problems = Problems(collect=True)
        recipe = problems.step(functools.partial(_load, path, problems), None)
        errors += problems.errors
        if recipe is not None and not problems.errors:
            recipes.append(recipe)
    try:
        check_disjoint({str(r.path): r.install_path for r in recipes})
    except RecipeError as exc:
        errors.append(exc)
    return recipes, errors


def _load(path: Path, problems: Problems) -> Recipe | None:
    """Return the recipe at ``path``, or None if ``problems`` kept a fault of it."""
    step = problems.step
    none: tuple[str, ...] = ()
    no_defaults: tuple[TableReader | None, Path | None] = (None, None)
    data = load_toml(path)
    for fault in templates(path, data):
        problems.template(fault)
    top = TableReader(path, data, "", report=problems.report)
    top.check_keys(_KEYS[""])
    if "venv" not in data:
        raise RecipeError(f"{path}: venv", "table [venv] is required")
    venv = top.sub("venv", _KEYS["venv"])
    defaults, defaults_file = step(lambda: _defaults(path, venv, problems), no_defaults)
    src = _Sources(path, venv, defaults)
    name = step(lambda: read_name(venv), "")
    version = step(lambda: read_version(venv), "")
    install_path = step(
        lambda: check_install_path(
            venv.get("install-path", str, required=True),
            where=venv.where("install-path"),
            error=RecipeError,
            as_root=True,  # what venv-pull, run as root on the targets, would refuse
        ),
        None,
    )
    install_tool = step(lambda: cast(InstallTool, src.literal("install-tool", ("pip", "uv"), "pip")), None)
    packages = step(lambda: tuple(sorted(set(src.lines("default-packages") + src.lines("packages")))), None)
    lock = step(lambda: _lock(path, venv), None)
    no_selection: tuple[tuple[str, ...], tuple[str, ...] | None] = ((), None)
    extras, groups = step(lambda: _lock_selection(venv, lock), no_selection)
    if packages == () and lock is None and "lock" not in venv.data:
        problems.report(venv.fail("packages", "no packages: set packages (or default-packages, or lock)"))
    build_reqs = step(lambda: _build_requirements(src), none)
    lists = {
        "packages": packages,
        "constraints": step(lambda: src.lines("constraints"), None),
        "global-constraints": step(lambda: src.lines("global-constraints"), None),
    }
    if all(v is not None for v in lists.values()):
        step(lambda: check_lines(path, cast("dict[str, tuple[str, ...]]", lists)), None)
    valid_time = step(lambda: _valid_time(src, venv), 0)
    states = ("present", "latest")
    package_state = step(lambda: src.literal("package-state", states, "latest"), "latest")
    distro_state = step(lambda: src.literal("distro-package-state", states, "present"), "present")
    pythons = step(lambda: _pythons(src), DEFAULT_PYTHONS)
    ignore_pip_config = step(lambda: src.pick("ignore-pip-config", bool, False), False)
    symlinks = step(lambda: src.merged("symlink-system-packages", _distro_package), none)
    build = step(lambda: src.side("build"), SideOptions())
    install = step(lambda: src.side("install", install_tool=install_tool or "pip"), SideOptions())
    facts: tuple[Fact, ...] = ()
    for table in src.tables():
        facts += step(functools.partial(read_facts, table), facts[:0])
    if problems.errors or install_path is None or install_tool is None or packages is None:
        return None
    return Recipe(
        path=path,
        name=name,
        version=version,
        install_path=install_path,
        python=pythons[0],
        pythons=pythons,
        packages=packages,
        build_requirements=build_reqs,
        constraints=lists["constraints"] or (),
        global_constraints=lists["global-constraints"] or (),
        install_tool=install_tool,
        package_state=cast(PackageState, package_state),
        distro_package_state=cast(PackageState, distro_state),
        distro_cache_valid_time=valid_time,
        ignore_pip_config=ignore_pip_config,
        symlink_system_packages=tuple(sorted(set(symlinks))),
        build=build,
        install=install,
        facts=facts,
        defaults_file=defaults_file,
        lock=lock,
        lock_extras=extras,
        lock_groups=groups,
    )


def _lock(path: Path, venv: TableReader) -> Path | None:
    """Return the PEP 751 lock the recipe names (beside the recipe), read once here to check it."""
    named = venv.get("lock", str, None)
    if named is None:
        return None
    file = (path.parent / named).resolve()
    if not file.is_file():
        raise venv.fail("lock", f"lock file not found: {named}")
    read_lock(file)
    return file


def _lock_selection(venv: TableReader, lock: Path | None) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """Return the extras and dependency groups of the lock the recipe asks for, each declared by it."""
    extras = venv.str_list("lock-extras")
    groups = venv.str_list("lock-groups") if "lock-groups" in venv.data else None
    if lock is None:
        for key in ("lock-extras", "lock-groups"):
            if key in venv.data and "lock" not in venv.data:  # (a lock that failed is reported)
                raise venv.fail(key, "only with a lock: name one in venv.lock")
        return extras, groups
    pylock = read_lock(lock).lock
    declared = {
        "lock-extras": {canonicalize_name(e) for e in pylock.extras or ()},
        "lock-groups": {
            canonicalize_name(g) for g in (*(pylock.dependency_groups or ()), *(pylock.default_groups or ()))
        },
    }
    for key, asked in (("lock-extras", extras), ("lock-groups", groups or ())):
        for i, name in enumerate(asked):
            if canonicalize_name(name) not in declared[key]:
                field = "extras" if key == "lock-extras" else "dependency-groups"
                known = ", ".join(sorted(declared[key])) or "none"
                raise RecipeError(
                    f"{venv.where(key)}[{i}]", f"{name}: not in {lock.name}'s {field} (it declares: {known})"
                )
    return extras, groups


def _build_requirements(src: _Sources) -> tuple[str, ...]:
    build_reqs = src.merged("build-requirements", check_requirement)
    if not src.given("build-requirements"):
        build_reqs = DEFAULT_BUILD_REQUIREMENTS
    return tuple(dict.fromkeys(build_reqs + src.merged("build-requirements-extra", check_requirement)))


def _valid_time(src: _Sources, venv: TableReader) -> int:
    valid_time = src.pick("distro-cache-valid-time", int, 600)
    if not 0 <= valid_time <= MAX_CACHE_VALID_TIME:
        raise venv.fail("distro-cache-valid-time", f"must be from 0 to {MAX_CACHE_VALID_TIME} seconds")
    return valid_time


def load_recipes(paths: Sequence[Path]) -> list[Recipe]:
    """Return the recipes at ``paths``; raise RecipeError if one's install path is, or contains,
    another's (one would replace or hide the other on a host).

    Example: ``load_recipes(find_recipes([Path("recipes")]))``
    """
    recipes = [load_recipe(p) for p in paths]
    check_disjoint({str(r.path): r.install_path for r in recipes})
    return recipes


def find_recipes(paths: list[Path]) -> list[Path]:
    """Return the recipe files named by ``paths`` (folders expand to their ``*.toml`` but the defaults)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(f for f in p.glob("*.toml") if f.name != DEFAULTS_FILE))
        else:
            found.append(p)
    return found
