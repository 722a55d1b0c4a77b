"""Import the original role's ``venv_*`` variables (a YAML file) as an equivalent recipe.

``import_role_file(Path("keystone-vars.yml")).toml`` is the text of ``recipes/keystone.toml``.
The library never prints: warnings travel in :class:`ImportResult`, faults in
:class:`ImportRoleError`, both one line per item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Sequence

import yaml  # type: ignore[import-untyped,unused-ignore]  # stubs may be absent; build side only

from .._fsutil import atomic_write
from ..artifact.pipargs import INSTALL_TOOLS, split_install_pip_args
from ..artifact.venvconfig import NAME_RE, TAG_RE
from ..errors import VenvshipError
from .recipefile import DEFAULT_FACTS_FILE
from .rolevalues import Importer, is_template
from .tablereader import did_you_mean
from .tomlwrite import dump_recipe, toml_string, toml_value

__all__ = [
    "IGNORED",
    "KNOWN",
    "ImportResult",
    "ImportRoleError",
    "import_role_file",
    "import_role_vars",
    "is_template",
    "toml_string",
    "toml_value",
    "write_recipe",
]

# variable → (TOML table, key), by the shape of the value.
_LISTS: dict[str, tuple[str, str]] = {
    "venv_pip_packages": ("venv", "packages"),
    "venv_default_pip_packages": ("venv", "default-packages"),
    "venv_build_requirements": ("venv", "build-requirements"),
    "venv_build_requirements_extra": ("venv", "build-requirements-extra"),
    "venv_build_constraints": ("venv", "constraints"),
    "venv_build_global_constraints": ("venv", "global-constraints"),
    "venv_packages_to_symlink": ("venv", "symlink-system-packages"),
    "venv_build_distro_package_list": ("venv.build", "distro-packages"),
    "venv_install_distro_package_list": ("venv.install", "distro-packages"),
}
_ARGS = {
    "venv_pip_build_args": ("venv.build", "pip-args"),
    "venv_pip_install_args": ("venv.install", "pip-args"),
}
_ENVS = {"venv_pip_build_env": ("venv.build", "env"), "venv_pip_install_env": ("venv.install", "env")}
_STRINGS = {"venv_install_destination_path": "install-path", "venv_python_executable": "python"}
_CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "venv_install_tool": ("install-tool", ("pip", "uv")),
    "venv_pip_package_state": ("package-state", ("present", "latest")),
    "venv_distro_package_state": ("distro-package-state", ("present", "latest")),
}
# Variables whose value is not a string: a whole-value template is kept under this key.
_WHOLE = {
    **_LISTS,
    **_ENVS,
    "venv_distro_cache_valid_time": ("venv", "distro-cache-valid-time"),
    "venv_pip_upgrade_noconf": ("venv", "ignore-pip-config"),
    "venv_facts_when_changed": ("venv", "facts"),
}
_OTHER = (
    "venv_distro_cache_valid_time",
    "venv_pip_upgrade_noconf",
    "venv_facts_when_changed",
    "venv_facts_dest",
)
KNOWN = tuple(_LISTS) + tuple(_ARGS) + tuple(_ENVS) + tuple(_STRINGS) + tuple(_CHOICES) + _OTHER

_NO_BUILD_HOST = "no build host: `venvship build` builds where it runs, once per distro and arch"
_NO_REPO = "no repo server: wheels travel inside the artifact, targets install offline"
# Variables that mean nothing to venvship, with what replaces them.
IGNORED: dict[str, str] = {
    "venv_rebuild": "use `venv-pull install --rebuild` on the target",
    "venv_wheels_rebuild": "use `venvship build --rebuild-wheels`",
    "venv_wheel_build_enable": "wheels are always built once, into the artifact",
    "venv_wheel_build_skip_check": "targets never build wheels, so there is no DoS check to skip",
    "venv_build_group": _NO_BUILD_HOST,
    "venv_build_host": _NO_BUILD_HOST,
    "venv_build_targets": _NO_BUILD_HOST,
    "venv_build_host_venv_path": "the builder venv lives in venvship's build cache",
    "venv_build_host_requirements_path": _NO_REPO,
    "venv_build_host_wheel_path": _NO_REPO,
    "venv_build_host_user_name": _NO_REPO,
    "venv_build_host_group_name": _NO_REPO,
    "venv_default_pip_build_args": "venvship always builds with --no-build-isolation; "
    "extra arguments go in venv_pip_build_args",
    "venv_default_pip_install_args": "targets install offline from the artifact (no --find-links or "
    "--trusted-host); extra arguments go in venv_pip_install_args",
    "venv_build_base_distro_package_list": "venvship adds the per-distro base list itself",
    "venv_install_base_distro_package_list": "venvship adds the per-distro base list itself",
    "openstack_repo_url": _NO_REPO,
    "openstack_release": "the recipe's version is the artifact tag",
}

# `keystone-31.0.0` → keystone, 31.0.0; `keystone-{{ venv_tag }}` keeps the template as version.
_NAME_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>(?:\d|\{\{).*)$")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")  # as Ansible's `bool`


@dataclass(frozen=True)
class ImportResult:
    """The recipe made from a role's variables, and what the user should know about it."""

    name: str
    version: str
    toml: str
    warnings: tuple[str, ...] = ()


class ImportRoleError(VenvshipError):
    """The variables cannot become a recipe; ``problems`` holds one line per fault."""

    def __init__(self, source: str, problems: Sequence[str], *, warnings: Sequence[str] = ()) -> None:
        self.problems = tuple(f"{source}: {p}" for p in problems)
        self.warnings = tuple(warnings)
        super().__init__("\n".join(self.problems))


def import_role_vars(
    variables: Mapping[str, Any],
    *,
    source: str = "<vars>",
    name: str | None = None,
    version: str | None = None,
    keep_templates: bool = False,
) -> ImportResult:
    """Return the recipe equivalent to the role's ``variables``; raise ImportRoleError listing every fault.

    Example: ``import_role_vars({"venv_install_destination_path": "/openstack/venvs/x-1.0",
    "venv_pip_packages": ["x"]}).toml``
    """
    imp = Importer(keep_templates=keep_templates)
    venv = imp.tables["venv"]
    for raw_var, value in variables.items():
        _take(imp, str(raw_var), value, variables)
    _take_facts(imp, variables)

    if not venv.get("packages") and not venv.get("default-packages"):
        imp.problems.append("venv_pip_packages: no packages to install (set it or venv_default_pip_packages)")
    name, version = _identity(imp, venv.get("install-path"), name=name, version=version)
    if imp.problems:
        raise ImportRoleError(source, imp.problems, warnings=imp.warnings)
    venv["name"], venv["version"] = name, version
    header = f"# Made by `venvship import-role` from {source}.\n"
    if any(w.startswith("template kept:") for w in imp.warnings):
        header += (
            "# Values holding {{ }} or {% %} are Ansible templates as given: fill them in before building.\n"
        )
    return ImportResult(
        name=name,
        version=version,
        toml=header + dump_recipe(imp.tables, imp.facts),
        warnings=tuple(imp.warnings),
    )


def _take(imp: Importer, var: str, value: Any, variables: Mapping[str, Any]) -> None:
    """Put the role variable ``var`` into the recipe tables of ``imp`` (or a problem or warning)."""
    venv = imp.tables["venv"]
    if var in IGNORED:
        imp.warnings.append(f"ignored: {var}: {IGNORED[var]}")
    elif var not in KNOWN:
        imp.problems.append(f"{var}: unknown variable{did_you_mean(var, KNOWN + tuple(IGNORED))}")
    elif value is None:
        return  # an empty YAML value means "not set", as the role's defaults do
    elif isinstance(value, str) and is_template(value) and var in _WHOLE:
        # `venv_build_constraints: "{{ keystone_git_constraints }}"`: the whole value is Jinja.
        imp.templated(var, value)
        table, key = _WHOLE[var]
        imp.tables[table][key] = value
    elif var in ("venv_facts_when_changed", "venv_facts_dest"):
        return  # done by _take_facts, once the facts file is known
    elif var in _LISTS:
        table, key = _LISTS[var]
        if (items := imp.str_list(var, value)) is not None:
            imp.tables[table][key] = items
    elif var in _ARGS:
        table, key = _ARGS[var]
        if (args := imp.args(var, value)) is not None:
            if var == "venv_pip_install_args" and isinstance(args, list):
                # Targets pass an artifact's install args to pip or uv only from an allow-list.
                tool = variables.get("venv_install_tool")
                args, dropped = split_install_pip_args(args, tool=tool if tool in INSTALL_TOOLS else "pip")
                imp.warnings.extend(f"ignored: {var}: {why}" for _, why in dropped)
                if not args:
                    return  # every arg dropped: no `pip-args = []` left behind
            imp.tables[table][key] = args
    elif var in _ENVS:
        table, key = _ENVS[var]
        if (env := imp.env(var, value)) is not None:
            imp.tables[table][key] = env
    elif var in _STRINGS:
        text = imp.string(var, value)
        if text is not None:
            imp.templated(var, text)
            venv[_STRINGS[var]] = text
    elif var in _CHOICES:
        key, choices = _CHOICES[var]
        if (text := imp.choice(var, value, choices)) is not None:
            venv[key] = text
    elif var == "venv_distro_cache_valid_time":
        seconds = _integer(value)
        if seconds is None or seconds < 0:
            imp.problems.append(f"{var}: must be a number of seconds, not {value!r}")
        else:
            venv["distro-cache-valid-time"] = seconds
    elif var == "venv_pip_upgrade_noconf":
        word = str(value).strip().lower()
        if isinstance(value, bool) or word in _TRUE + _FALSE:
            venv["ignore-pip-config"] = value if isinstance(value, bool) else word in _TRUE
        else:
            imp.problems.append(f"{var}: must be true or false, not {value!r}")


def _take_facts(imp: Importer, variables: Mapping[str, Any]) -> None:
    """Put ``venv_facts_when_changed`` into ``imp``, in the file ``venv_facts_dest`` names."""
    dest = variables.get("venv_facts_dest")
    if dest is None:
        dest = DEFAULT_FACTS_FILE
    elif not isinstance(dest, str) or not dest.strip():
        imp.problems.append(f"venv_facts_dest: must be a file name, not {dest!r}")
        dest = DEFAULT_FACTS_FILE
    else:
        imp.templated("venv_facts_dest", dest)
    facts = variables.get("venv_facts_when_changed")
    if facts is not None and not (isinstance(facts, str) and is_template(facts)):
        imp.fact_list(facts, dest.strip())
    elif facts is None and variables.get("venv_facts_dest") is not None:
        imp.warnings.append("ignored: venv_facts_dest: venv_facts_when_changed is empty, no facts to write")


def _identity(
    imp: Importer, install_path: str | None, *, name: str | None, version: str | None
) -> tuple[str, str]:
    """Return name and version: given, or from the install path's basename (``keystone-31.0.0``)."""
    var = "venv_install_destination_path"
    if install_path is None:
        if any(p.startswith(f"{var}:") for p in imp.problems):
            return "", ""  # set, but not a string: already reported
        imp.problems.append(
            f"{var}: is required (the venv's path on the targets, such as /openstack/venvs/keystone-31.0.0)"
        )
        return "", ""
    if not install_path.startswith("/") and not is_template(install_path):
        imp.problems.append(f"{var}: must be an absolute path, not {install_path!r}")
    base = PurePosixPath(install_path).name
    m = _NAME_VERSION.match(base)
    if name is None:
        # Without a version in it, the whole basename is the name (`/opt/tools` + --version).
        name = m.group("name").lower() if m else base.lower() or None
    if version is None:
        version = m.group("version") if m else None
    if name is None or version is None:
        missing = " and ".join(f"--{n}" for n, v in (("name", name), ("version", version)) if v is None)
        imp.problems.append(
            f"{var}: cannot tell the venv's name and version from {base!r} (expected NAME-VERSION, such as keystone-31.0.0); pass {missing}"
        )
        return "", ""
    if not is_template(name) and not NAME_RE.fullmatch(name):
        imp.problems.append(
            f"name {name!r} is not a valid artifact name (lowercase letters, digits, . _ -); pass --name"
        )
    if not is_template(version) and not TAG_RE.fullmatch(version):
        imp.problems.append(
            f"version {version!r} is not usable as a tag (letters, digits, . _ + -); pass --version"
        )
    return name, version


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


MAX_VARS_SIZE = 1 << 20  # a role's variables file is a few KiB


class _NoAliasLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """A SafeLoader that refuses aliases: a few hundred bytes of nested aliases expand to gigabytes."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call,unused-ignore]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not accepted: write the value out", mark
            )
        return super().compose_node(parent, index)


def import_role_file(
    path: Path, *, name: str | None = None, version: str | None = None, keep_templates: bool = False
) -> ImportResult:
    """Return the recipe equivalent to the variables in the YAML file ``path``.

    Example: ``import_role_file(Path("keystone-vars.yml"), keep_templates=True).warnings``
    """
    source = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_VARS_SIZE + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise ImportRoleError(source, ["file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportRoleError(source, [f"cannot read: {exc}"]) from exc
    if len(raw) > MAX_VARS_SIZE:
        raise ImportRoleError(source, [f"larger than {MAX_VARS_SIZE >> 10} KiB: not a role's variables file"])
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader without aliases
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ImportRoleError(source, [f"invalid YAML{at}: {problem}"]) from exc
    if not isinstance(data, dict):
        raise ImportRoleError(source, ["must be a mapping of variables (venv_install_destination_path: ...)"])
    return import_role_vars(data, source=source, name=name, version=version, keep_templates=keep_templates)


def write_recipe(result: ImportResult, path: Path, *, force: bool = False) -> None:
    """Write ``result.toml`` to ``path`` atomically; refuse to replace a file unless ``force``."""
    if path.exists() and not force:
        raise VenvshipError(f"{path}: already exists (pass --force to replace it)")
    try:
        atomic_write(path, result.toml.encode("utf-8"))
    except OSError as exc:
        raise VenvshipError(f"{path}: cannot write: {exc.strerror or exc}") from exc
