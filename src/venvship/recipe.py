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
class StageOptions:
    """Options of one stage (build or install): distro packages, extra pip args, environment."""

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
    python: str
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
    build: StageOptions
    install: StageOptions
    facts: tuple[Fact, ...]
    defaults_file: Path | None = None

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

    def pick(key: str, kind: type[T], default: T) -> T:
        if key in venv.data:
            return venv.get(key, kind, default)
        if defaults is not None and key in defaults.data:
            return defaults.get(key, kind, default)
        return default

    def merged_list(
        key: str, check: Callable[[str, str], str] | None = None, *, lines: bool = False
    ) -> tuple[str, ...]:
        """Defaults first (global constraints from the shared file apply ahead of the recipe's).
        ``lines``: requirement-file lines, whose relative paths are taken beside the file naming them."""
        first: tuple[str, ...] = ()
        if defaults is not None:
            first = defaults.str_list(
                key, check=check_line(defaults.file.parent.resolve()) if lines else check
            )
        return first + venv.str_list(key, check=check_line(path.parent.resolve()) if lines else check)

    name = venv.get("name", str, required=True).strip()
    if not name:
        raise venv.fail("name", "must not be empty")
    if not NAME_RE.fullmatch(name):
        raise venv.fail("name", f"{name!r} is not a valid artifact name (lowercase letters, digits, . _ -)")
    version = venv.get("version", str, required=True).strip()
    if not TAG_RE.fullmatch(version):
        raise venv.fail("version", f"{version!r} is not usable as a tag (letters, digits, . _ + -)")
    install_path = check_install_path(
        venv.get("install-path", str, required=True), where=venv.where("install-path"), error=RecipeError
    )
    install_tool = cast(InstallTool, _literal_from(venv, defaults, "install-tool", ("pip", "uv"), "pip"))

    packages = sorted(set(merged_list("default-packages", lines=True) + merged_list("packages", lines=True)))
    if not packages:
        raise venv.fail("packages", "no packages: set packages (or default-packages)")
    build_reqs_given = "build-requirements" in venv.data or (
        defaults is not None and "build-requirements" in defaults.data
    )
    build_reqs = (
        merged_list("build-requirements", check_requirement)
        if build_reqs_given
        else DEFAULT_BUILD_REQUIREMENTS
    )
    build_reqs = tuple(dict.fromkeys(build_reqs + merged_list("build-requirements-extra", check_requirement)))

    global_constraints = merged_list("global-constraints", lines=True)
    constraints = merged_list("constraints", lines=True)
    where_g = f"{path}: venv.global-constraints"
    where_c = f"{path}: venv.constraints"
    check_pins([(where_g, c) for c in global_constraints] + [(where_c, c) for c in constraints])
    for key, lines in (
        ("packages", packages),
        ("constraints", constraints),
        ("global-constraints", global_constraints),
    ):
        # Local files are read now, so that a bad line in one, or a file including itself, is named
        # before any build; remote ones are fetched at build time.
        expand(
            [(line, f"{path}: venv.{key}") for line in lines],
            kind="requirements" if key == "packages" else "constraints",
            base=str(path.parent.resolve()),
            read=_read_local_only,
        )

    build_tables = [r.sub("build", _KEYS["venv.build"]) for r in (defaults, venv) if r is not None]
    install_tables = [r.sub("install", _KEYS["venv.install"]) for r in (defaults, venv) if r is not None]

    def stage(tables: list[TableReader], *, install: bool) -> StageOptions:
        env: dict[str, str] = {}
        for t in tables:
            env.update(t.env("env"))
        pip_args: tuple[str, ...] = ()
        for t in tables:
            args = t.str_list("pip-args")
            if install:  # build pip-args run on the build host, under its operator: not restricted
                check_install_pip_args(args, tool=install_tool, where=t.where("pip-args"), error=RecipeError)
            pip_args += args
        return StageOptions(
            distro_packages=tuple(
                sorted({p for t in tables for p in t.str_list("distro-packages", check=_distro_package)})
            ),
            pip_args=pip_args,
            env=env,
        )

    valid_time = pick("distro-cache-valid-time", int, 600)
    if not 0 <= valid_time <= MAX_CACHE_VALID_TIME:
        raise venv.fail("distro-cache-valid-time", f"must be from 0 to {MAX_CACHE_VALID_TIME} seconds")
    return Recipe(
        path=path,
        name=name,
        version=version,
        install_path=install_path,
        python=pick("python", str, "python3"),
        packages=tuple(packages),
        build_requirements=build_reqs,
        constraints=constraints,
        global_constraints=global_constraints,
        install_tool=install_tool,
        package_state=cast(
            PackageState, _literal_from(venv, defaults, "package-state", ("present", "latest"), "latest")
        ),
        distro_package_state=cast(
            PackageState,
            _literal_from(venv, defaults, "distro-package-state", ("present", "latest"), "present"),
        ),
        distro_cache_valid_time=valid_time,
        ignore_pip_config=pick("ignore-pip-config", bool, False),
        symlink_system_packages=tuple(sorted(set(merged_list("symlink-system-packages", _distro_package)))),
        build=stage(build_tables, install=False),
        install=stage(install_tables, install=True),
        facts=(_facts(defaults) if defaults is not None else ()) + _facts(venv),
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


def _literal_from(
    venv: TableReader, defaults: TableReader | None, key: str, choices: tuple[str, ...], default: str
) -> str:
    if key not in venv.data and defaults is not None and key in defaults.data:
        return defaults.choice(key, choices, default)
    return venv.choice(key, choices, default)


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
