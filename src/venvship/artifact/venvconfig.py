"""The config blob of a per-platform manifest (DESIGN §4): the lock, the interpreter, the platform
and everything else a target needs to install, as frozen dataclasses with strict JSON in and out.

The config comes from wherever the artifact came from, and ``venv-pull`` acts on it as root: every
name that reaches a file name, a command line or an INI line is checked here, and again by the
recipe loader at build time (the same functions), so that a bad value is named where it is made.
Stdlib only: the target side reads these on bare hosts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import ArtifactError
from .destinations import check_install_path
from .jsondoc import Refusal, artifact_error, check_no_nul, load_object, str_map, typed_field
from .layerformat import Layers
from .pipargs import INSTALL_TOOLS, check_install_pip_args

CONFIG_SCHEMA = 1

# A valid artifact (repository) name, and a version usable as a tag once "+" becomes "_".
NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,100}")
# Fact file, section and option names: a file name and INI keys that cannot start a new line,
# section or comment.
FACT_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
# Debian's package name rule (with an optional :arch), and RPM's; neither can start with "-",
# which apt-get, dnf, dpkg and rpm would take as an option.
DEB_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?")
RPM_PACKAGE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_DIST_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 508
_DIST_VERSION_RE = re.compile(r"[A-Za-z0-9.+!_-]{1,100}")  # PEP 440 characters, normal or legacy
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_VCS_SOURCE = re.compile(r"(?:git|hg|svn|bzr)\+[a-z]+://\S+")  # what the build records for a VCS source
MAX_CACHE_VALID_TIME = 366 * 24 * 3600  # a year: the apt cache is older than that on no live host
STATES = ("present", "latest")


@dataclass(frozen=True)
class Wheel:
    """One wheel of a lock: the distribution, its file name and the sha256 of the file."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> Wheel:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: not an object")
        wheel = cls(
            name=typed_field(data, "name", str, where),
            version=typed_field(data, "version", str, where),
            filename=typed_field(data, "filename", str, where),
            sha256=typed_field(data, "sha256", str, where),
            size=typed_field(data, "size", int, where),
        )
        # The name and version become a line of a requirements file, the sha256 a folder name and
        # the file name a file name on the target: refuse anything but plain ones.
        if not _DIST_NAME_RE.fullmatch(wheel.name):
            raise ArtifactError(f"{where}.name: {wheel.name!r} is not a distribution name")
        if not _DIST_VERSION_RE.fullmatch(wheel.version):
            raise ArtifactError(f"{where}.version: {wheel.version!r} is not a version")
        if not _SHA256_RE.fullmatch(wheel.sha256):
            raise ArtifactError(f"{where}.sha256: not 64 lowercase hex digits")
        if wheel.size < 0:
            raise ArtifactError(f"{where}.size: negative")
        if "/" in wheel.filename or "\\" in wheel.filename or not wheel.filename.endswith(".whl"):
            raise ArtifactError(f"{where}: unsafe wheel file name {wheel.filename!r}")
        return wheel


@dataclass(frozen=True)
class PythonInfo:
    """The interpreter a venv is built for."""

    implementation: str  # "cpython"
    version: str  # "3.11.2"
    abi: str  # "cp311"
    executable: str  # the recipe's python, e.g. "python3"


@dataclass(frozen=True)
class PlatformInfo:
    """Where an artifact runs: OS, Go architecture name, distro key and the glibc floor."""

    os: str
    architecture: str
    distro: str
    glibc: str
    distro_bound: bool
    variant: str = ""


def platform_key(*, distro: str, architecture: str, abi: str) -> str:
    """Return the platform key ``<distro>-<arch>-<pyabi>`` used in tags (``debian-12-amd64-cp311``)."""
    return f"{distro}-{architecture}-{abi}"


@dataclass(frozen=True)
class Fact:
    """One Ansible local fact written when the venv changes."""

    file: str
    section: str
    option: str
    value: str


def check_fact(fact: Fact, *, where: str, error: Refusal = artifact_error) -> Fact:
    """Return ``fact`` if it can only become ``<file>.fact`` and one ``option = value`` line in
    its section; raise ``error(where + key, reason)`` otherwise.

    Example: ``check_fact(Fact(file="openstack_ansible", section="keystone", option="tag", value="1"), where="x")``
    """
    for key in ("file", "section", "option"):
        value = getattr(fact, key)
        if not FACT_NAME_RE.fullmatch(value) or (key == "file" and value in (".", "..")):
            raise error(f"{where}.{key}", f"{value!r} is not a plain name (letters, digits, _ . -)")
    if fact.section == "DEFAULT":  # configparser's section of defaults for every other section
        raise error(f"{where}.section", "'DEFAULT' is reserved by the INI format")
    if "\0" in fact.value or fact.value.splitlines() not in ([], [fact.value]):
        raise error(f"{where}.value", "must be one line without NUL characters")
    return fact


def check_distro_package(name: str, *, where: str, error: Refusal = artifact_error) -> str:
    """Return ``name`` if it is a Debian or RPM package name; raise ``error(where, reason)`` otherwise.

    Example: ``check_distro_package("python3-libvirt", where="config.install.distro_packages[0]")``
    """
    if not (DEB_PACKAGE_RE.fullmatch(name) or RPM_PACKAGE_RE.fullmatch(name)):
        raise error(where, f"{name!r} is not a Debian or RPM package name")
    return name


def check_env(env: Mapping[str, str], *, where: str, error: Refusal = artifact_error) -> dict[str, str]:
    """Return ``env`` if every key can be an environment variable name and no value holds a NUL.

    Example: ``check_env({"PBR_VERSION": "1.0"}, where="config.install.env")``
    """
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            raise error(where, f"{key!r} is not an environment variable name (empty, '=' or NUL)")
        if "\0" in value:
            raise error(f"{where}.{key}", "contains a NUL character")
    return dict(env)


@dataclass(frozen=True)
class VenvConfig:
    """The config blob of a per-platform manifest: everything a target needs to install."""

    name: str
    version: str
    recipe_digest: str
    install_path: str
    python: PythonInfo
    platform: PlatformInfo
    lock: tuple[Wheel, ...]
    tools: tuple[Wheel, ...]
    install_tool: str
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    global_constraints: tuple[str, ...]
    distro_package_state: str  # runtime distro packages: present or latest
    distro_cache_valid_time: int  # seconds the apt cache counts as fresh
    install_distro_packages: tuple[str, ...]
    install_pip_args: tuple[str, ...]
    install_env: Mapping[str, str]
    symlink_system_packages: tuple[str, ...]
    facts: tuple[Fact, ...]
    builder: Mapping[str, str]
    provenance: Mapping[str, str]
    layers: Layers | None = None  # ready-to-run layers; None: the artifact carries wheels only
    # Wheel filename -> the URL its archive came from, for a direct URL (``name @ https://…``,
    # a lock's ``archive``): not an index's release, so the SBOM's purl says where from.
    download_urls: Mapping[str, str] = field(default_factory=dict)

    def vcs_source(self, filename: str) -> str | None:
        """Return the VCS URL and commit the wheel ``filename`` was built from, or None.

        Example: ``config.vcs_source("gamma-3.0-py3-none-any.whl")`` → ``"git+https://h/gamma@1f0c…"``
        """
        source = self.provenance.get(filename, "")
        return source if _VCS_SOURCE.fullmatch(source) else None

    @property
    def platform_key(self) -> str:
        return platform_key(
            distro=self.platform.distro,
            architecture=self.platform.architecture,
            abi=self.python.abi,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": CONFIG_SCHEMA,
            "name": self.name,
            "version": self.version,
            "recipe_digest": self.recipe_digest,
            "install_path": self.install_path,
            "python": {
                "implementation": self.python.implementation,
                "version": self.python.version,
                "abi": self.python.abi,
                "executable": self.python.executable,
            },
            "platform": {
                "os": self.platform.os,
                "architecture": self.platform.architecture,
                "variant": self.platform.variant,
                "distro": self.platform.distro,
                "glibc": self.platform.glibc,
                "distro_bound": self.platform.distro_bound,
            },
            "lock": [w.to_json() for w in self.lock],
            "tools": [w.to_json() for w in self.tools],
            "install_tool": self.install_tool,
            "requirements": list(self.requirements),
            "constraints": list(self.constraints),
            "global_constraints": list(self.global_constraints),
            "distro_package_state": self.distro_package_state,
            "distro_cache_valid_time": self.distro_cache_valid_time,
            "install": {
                "distro_packages": list(self.install_distro_packages),
                "pip_args": list(self.install_pip_args),
                "env": dict(self.install_env),
            },
            "symlink_system_packages": list(self.symlink_system_packages),
            "facts": [
                {"file": f.file, "section": f.section, "option": f.option, "value": f.value}
                for f in self.facts
            ],
            "builder": dict(self.builder),
            "provenance": dict(self.provenance),
            **({"layers": self.layers.to_json()} if self.layers is not None else {}),
            **({"download_urls": dict(self.download_urls)} if self.download_urls else {}),
        }

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "config") -> VenvConfig:
        """Return the config blob ``raw``; raise ArtifactError (one line, naming the key) if it is
        not one venv-pull may act on.

        Example: ``VenvConfig.from_bytes(reader.read(manifest.config), where=f"{ref} config")``
        """
        return cls.from_json(load_object(raw, where), where=where)

    @classmethod
    def from_json(cls, data: Any, *, where: str = "config") -> VenvConfig:
        """Return the config parsed from JSON ``data``; see :meth:`from_bytes`."""
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: not a JSON object")
        if data.get("schema") != CONFIG_SCHEMA:
            raise ArtifactError(f"{where}: unsupported schema {data.get('schema')!r}")
        check_no_nul(data, where)
        inst = typed_field(data, "install", dict, where)
        name = _field(data, "name", where)
        if not NAME_RE.fullmatch(name):
            raise ArtifactError(f"{where}.name: {name!r} is not a valid artifact name")
        version = _field(data, "version", where)
        if not TAG_RE.fullmatch(version):
            raise ArtifactError(f"{where}.version: {version!r} is not usable as a tag")
        install_path = _field(data, "install_path", where)
        check_install_path(install_path, where=f"{where}.install_path")
        install_tool = _choice(data, "install_tool", INSTALL_TOOLS, where)
        at = f"{where}.install"
        return cls(
            name=name,
            version=version,
            recipe_digest=_field(data, "recipe_digest", where),
            install_path=install_path,
            python=_python(typed_field(data, "python", dict, where), f"{where}.python"),
            platform=_platform(typed_field(data, "platform", dict, where), f"{where}.platform"),
            lock=_wheels(data, "lock", where),
            tools=_wheels(data, "tools", where),
            install_tool=install_tool,
            requirements=_strs(data, "requirements", where),
            constraints=_strs(data, "constraints", where),
            global_constraints=_strs(data, "global_constraints", where),
            distro_package_state=_choice(data, "distro_package_state", STATES, where),
            distro_cache_valid_time=_cache_valid_time(data.get("distro_cache_valid_time", 600), where),
            install_distro_packages=_packages(inst, "distro_packages", at),
            install_pip_args=check_install_pip_args(
                _strs(inst, "pip_args", at), tool=install_tool, where=f"{at}.pip_args"
            ),
            install_env=check_env(str_map(inst.get("env"), f"{at}.env"), where=f"{at}.env"),
            symlink_system_packages=_packages(data, "symlink_system_packages", where),
            facts=_facts(typed_field(data, "facts", list, where), where=f"{where}.facts"),
            builder=str_map(data.get("builder"), f"{where}.builder"),
            provenance=str_map(data.get("provenance", {}), f"{where}.provenance"),
            layers=Layers.from_json(data["layers"], where=f"{where}.layers") if "layers" in data else None,
            download_urls=str_map(data.get("download_urls", {}), f"{where}.download_urls"),
        )


def _field(table: Mapping[str, Any], key: str, where: str) -> str:
    value: str = typed_field(table, key, str, where)
    return value


def _strs(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArtifactError(f"{where}: '{key}' is not a list of strings")
    return tuple(value)


def _packages(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = _strs(table, key, where)
    return tuple(check_distro_package(p, where=f"{where}.{key}[{i}]") for i, p in enumerate(items))


def _wheels(data: Mapping[str, Any], key: str, where: str) -> tuple[Wheel, ...]:
    items = typed_field(data, key, list, where)
    return tuple(Wheel.from_json(w, where=f"{where}.{key}[{i}]") for i, w in enumerate(items))


def _python(py: Mapping[str, Any], where: str) -> PythonInfo:
    return PythonInfo(
        implementation=_field(py, "implementation", where),
        version=_field(py, "version", where),
        abi=_field(py, "abi", where),
        executable=_field(py, "executable", where),
    )


def _platform(plat: Mapping[str, Any], where: str) -> PlatformInfo:
    distro_bound = plat.get("distro_bound", False)
    if not isinstance(distro_bound, bool):
        raise ArtifactError(f"{where}.distro_bound: not a boolean")
    return PlatformInfo(
        os=_field(plat, "os", where),
        architecture=_field(plat, "architecture", where),
        variant=_field(plat, "variant", where) if "variant" in plat else "",
        distro=_field(plat, "distro", where),
        glibc=_field(plat, "glibc", where),
        distro_bound=distro_bound,
    )


def _choice(data: Mapping[str, Any], key: str, choices: Sequence[str], where: str) -> str:
    value = data.get(key)
    if value not in choices:
        raise ArtifactError(f"{where}.{key}: must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _cache_valid_time(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_CACHE_VALID_TIME:
        raise ArtifactError(
            f"{where}.distro_cache_valid_time: must be a whole number of seconds from 0 to "
            f"{MAX_CACHE_VALID_TIME}, not {value!r:.40}"
        )
    return value


def _facts(items: list[Any], *, where: str) -> tuple[Fact, ...]:
    facts = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ArtifactError(f"{at}: not an object")
        fact = Fact(
            file=typed_field(item, "file", str, at),
            section=typed_field(item, "section", str, at),
            option=typed_field(item, "option", str, at),
            value=typed_field(item, "value", str, at),
        )
        facts.append(check_fact(fact, where=at))
    return tuple(facts)
