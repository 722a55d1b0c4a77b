"""The config blob of a per-platform manifest (DESIGN §4): the lock, the interpreter, the platform
and everything else a target needs to install, as frozen dataclasses with strict JSON in and out.

Stdlib only: the target side reads these on bare hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ArtifactError
from .jsondoc import typed_field
from .layerformat import Layers

CONFIG_SCHEMA = 1


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
        # Titles become file names on the target: refuse anything that is not a plain name.
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
        }

    @classmethod
    def from_json(cls, data: Any) -> VenvConfig:
        where = "config"
        if not isinstance(data, dict):
            raise ArtifactError("config: not a JSON object")
        if data.get("schema") != CONFIG_SCHEMA:
            raise ArtifactError(f"config: unsupported schema {data.get('schema')!r}")
        py = typed_field(data, "python", dict, where)
        plat = typed_field(data, "platform", dict, where)
        inst = typed_field(data, "install", dict, where)

        def strs(value: Any, key: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ArtifactError(f"config: '{key}' is not a list of strings")
            return tuple(value)

        return cls(
            name=typed_field(data, "name", str, where),
            version=typed_field(data, "version", str, where),
            recipe_digest=typed_field(data, "recipe_digest", str, where),
            install_path=typed_field(data, "install_path", str, where),
            python=PythonInfo(
                implementation=typed_field(py, "implementation", str, "config.python"),
                version=typed_field(py, "version", str, "config.python"),
                abi=typed_field(py, "abi", str, "config.python"),
                executable=typed_field(py, "executable", str, "config.python"),
            ),
            platform=PlatformInfo(
                os=typed_field(plat, "os", str, "config.platform"),
                architecture=typed_field(plat, "architecture", str, "config.platform"),
                variant=str(plat.get("variant", "")),
                distro=typed_field(plat, "distro", str, "config.platform"),
                glibc=typed_field(plat, "glibc", str, "config.platform"),
                distro_bound=bool(plat.get("distro_bound")),
            ),
            lock=tuple(
                Wheel.from_json(w, where=f"config.lock[{i}]")
                for i, w in enumerate(typed_field(data, "lock", list, where))
            ),
            tools=tuple(
                Wheel.from_json(w, where=f"config.tools[{i}]")
                for i, w in enumerate(typed_field(data, "tools", list, where))
            ),
            install_tool=typed_field(data, "install_tool", str, where),
            requirements=strs(data.get("requirements"), "requirements"),
            constraints=strs(data.get("constraints"), "constraints"),
            global_constraints=strs(data.get("global_constraints"), "global_constraints"),
            distro_package_state=typed_field(data, "distro_package_state", str, where),
            distro_cache_valid_time=int(data.get("distro_cache_valid_time", 600)),
            install_distro_packages=strs(inst.get("distro_packages"), "install.distro_packages"),
            install_pip_args=strs(inst.get("pip_args"), "install.pip_args"),
            install_env={str(k): str(v) for k, v in typed_field(inst, "env", dict, "config.install").items()},
            symlink_system_packages=strs(data.get("symlink_system_packages"), "symlink_system_packages"),
            facts=tuple(
                Fact(
                    file=typed_field(f, "file", str, "config.facts"),
                    section=typed_field(f, "section", str, "config.facts"),
                    option=typed_field(f, "option", str, "config.facts"),
                    value=typed_field(f, "value", str, "config.facts"),
                )
                for f in typed_field(data, "facts", list, where)
            ),
            builder={str(k): str(v) for k, v in typed_field(data, "builder", dict, where).items()},
            provenance={str(k): str(v) for k, v in (data.get("provenance") or {}).items()},
            layers=Layers.from_json(data["layers"]) if "layers" in data else None,
        )
