"""Recipes: one TOML file per venv → a frozen :class:`Recipe`, with key-path errors.

Every variable of the original role has a home here (docs/reference/recipe.md has the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Literal, Mapping, Sequence, TypeVar, cast

from .artifact import Fact
from .destinations import check_disjoint, check_install_path
from .errors import RecipeError
from .jsondoc import walk
from .pipargs import check_install_pip_args
from .requirements import (
    Include,
    check_line,
    check_pins,
    check_requirement,
    expand,
    is_url,
    parse_line,
    read_local,
)
from .rolevalues import is_template
from .tablereader import TableReader, load_toml
from .venvconfig import MAX_CACHE_VALID_TIME, NAME_RE, TAG_RE, check_distro_package, check_fact

InstallTool = Literal["pip", "uv"]
PackageState = Literal["present", "latest"]
DEFAULTS_FILE = "defaults.toml"
DEFAULT_FACTS_FILE = "openstack_ansible"  # venv_facts_dest
DEFAULT_BUILD_REQUIREMENTS = ("pbr", "setuptools", "wheel")


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
    "venv.facts": ("file", "section", "option", "value"),
}
# What a shared defaults file may set: everything but the venv's identity.
_DEFAULTS_KEYS = tuple(k for k in _KEYS["venv"] if k not in ("name", "version", "install-path", "defaults"))

T = TypeVar("T")


def _facts(reader: TableReader) -> tuple[Fact, ...]:
    value = reader.get("facts", list, [])
    facts = []
    for i, item in enumerate(value):
        where = f"{reader.where('facts')}[{i}]"
        if not isinstance(item, dict):
            raise RecipeError(where, "must be a table with section, option and value")
        sub = TableReader(reader.file, item, f"{reader.prefix}.facts[{i}]")
        sub.check_keys(_KEYS["venv.facts"])
        raw = item.get("value")
        if raw is None or isinstance(raw, (dict, list)):
            raise RecipeError(f"{where}.value", "is required and must be a string, number or boolean")
        fact = Fact(
            file=sub.get("file", str, DEFAULT_FACTS_FILE),
            section=sub.get("section", str, required=True),
            option=sub.get("option", str, required=True),
            # Ansible's ini_file writes Python's str(): true → "True".
            value=str(raw),
        )
        facts.append(check_fact(fact, where=where, error=RecipeError))
        # Ansible folds option names to lower case and refuses a file where two collide.
        clash = next(
            (
                f
                for f in facts[:-1]
                if (f.file, f.section, f.option.lower()) == (fact.file, fact.section, fact.option.lower())
                and f.option != fact.option
            ),
            None,
        )
        if clash is not None:
            raise RecipeError(
                f"{where}.option", f"{fact.option!r} differs from {clash.option!r} only in case"
            )
    return tuple(facts)


def _distro_package(name: str, where: str) -> str:
    return check_distro_package(name, where=where, error=RecipeError)


def _defaults(path: Path, venv: TableReader) -> tuple[TableReader | None, Path | None]:
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
    _no_templates(file, data)
    top = TableReader(file, data, "")
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


def _identity(venv: TableReader) -> tuple[str, str, PurePosixPath]:
    """Return the recipe's name, version and install path, each checked."""
    name = venv.get("name", str, required=True).strip()
    if not name:
        raise venv.fail("name", "must not be empty")
    if not NAME_RE.fullmatch(name):
        raise venv.fail("name", f"{name!r} is not a valid artifact name (lowercase letters, digits, . _ -)")
    version = venv.get("version", str, required=True).strip()
    if not TAG_RE.fullmatch(version):
        raise venv.fail("version", f"{version!r} is not usable as a tag (letters, digits, . _ + -)")
    install_path = check_install_path(
        venv.get("install-path", str, required=True),
        where=venv.where("install-path"),
        error=RecipeError,
        as_root=True,  # what venv-pull, run as root on the targets, would refuse
    )
    return name, version, install_path


def _check_lines(path: Path, lists: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse conflicting pins, and read the local files the lists include now, so that a bad line
    in one, or a file including itself, is named before any build (remote ones: at build time)."""
    check_pins(
        [(f"{path}: venv.global-constraints", c) for c in lists["global-constraints"]]
        + [(f"{path}: venv.constraints", c) for c in lists["constraints"]]
    )
    for key, lines in lists.items():
        expand(
            [(line, f"{path}: venv.{key}") for line in lines],
            kind="requirements" if key == "packages" else "constraints",
            base=str(path.parent.resolve()),
            read=_read_local_only,
        )


def load_recipe(path: Path) -> Recipe:
    """Return the recipe at ``path``, merged with its shared defaults; raise RecipeError on any fault.

    Example: ``load_recipe(Path("recipes/demo.toml")).packages``
    """
    data = load_toml(path)
    _no_templates(path, data)
    top = TableReader(path, data, "")
    top.check_keys(_KEYS[""])
    if "venv" not in data:
        raise RecipeError(f"{path}: venv", "table [venv] is required")
    venv = top.sub("venv", _KEYS["venv"])
    defaults, defaults_file = _defaults(path, venv)
    src = _Sources(path, venv, defaults)
    name, version, install_path = _identity(venv)
    install_tool = cast(InstallTool, src.literal("install-tool", ("pip", "uv"), "pip"))
    packages = tuple(sorted(set(src.lines("default-packages") + src.lines("packages"))))
    if not packages:
        raise venv.fail("packages", "no packages: set packages (or default-packages)")
    build_reqs = src.merged("build-requirements", check_requirement)
    if not src.given("build-requirements"):
        build_reqs = DEFAULT_BUILD_REQUIREMENTS
    build_reqs = tuple(dict.fromkeys(build_reqs + src.merged("build-requirements-extra", check_requirement)))
    lists = {
        "packages": packages,
        "constraints": src.lines("constraints"),
        "global-constraints": src.lines("global-constraints"),
    }
    _check_lines(path, lists)
    valid_time = src.pick("distro-cache-valid-time", int, 600)
    if not 0 <= valid_time <= MAX_CACHE_VALID_TIME:
        raise venv.fail("distro-cache-valid-time", f"must be from 0 to {MAX_CACHE_VALID_TIME} seconds")
    states = ("present", "latest")
    pythons = _pythons(src)
    return Recipe(
        path=path,
        name=name,
        version=version,
        install_path=install_path,
        python=pythons[0],
        pythons=pythons,
        packages=packages,
        build_requirements=build_reqs,
        constraints=lists["constraints"],
        global_constraints=lists["global-constraints"],
        install_tool=install_tool,
        package_state=cast(PackageState, src.literal("package-state", states, "latest")),
        distro_package_state=cast(PackageState, src.literal("distro-package-state", states, "present")),
        distro_cache_valid_time=valid_time,
        ignore_pip_config=src.pick("ignore-pip-config", bool, False),
        symlink_system_packages=tuple(sorted(set(src.merged("symlink-system-packages", _distro_package)))),
        build=src.side("build"),
        install=src.side("install", install_tool=install_tool),
        facts=sum((_facts(t) for t in src.tables()), ()),
        defaults_file=defaults_file,
    )


def _no_templates(path: Path, data: Mapping[str, Any]) -> None:
    """Refuse a value that still holds Jinja (``import-role --keep-templates`` writes them for a
    person to fill in): no build or target renders it, so it would fail there, or worse, work."""
    for key, _, value in walk(data):
        if isinstance(value, str) and is_template(value):
            raise RecipeError(
                f"{path}: {key}",
                f"still holds Jinja ({value!r:.60}): put the value Ansible would render here",
            )


def _read_local_only(target: str, where: str) -> bytes:
    if is_url(target) and not target.startswith("file:"):
        return b""
    return read_local(target, where)


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
