"""The artifact contract (DESIGN §4) as frozen dataclasses, with canonical JSON in and out.

Stdlib only: the target side reads these on bare hosts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ArtifactError

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
ARTIFACT_TYPE = "application/vnd.venvship.venv.v1"
CONFIG_TYPE = "application/vnd.venvship.venv.config.v1+json"
WHEEL_TYPE = "application/vnd.venvship.wheel.v1+zip"

TITLE = "org.opencontainers.image.title"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"
VERSION = "org.opencontainers.image.version"
ANN_PYTHON = "io.venvship.python"
ANN_DISTRO = "io.venvship.distro"
ANN_GLIBC = "io.venvship.glibc"
ANN_DISTRO_BOUND = "io.venvship.distro-bound"

CONFIG_SCHEMA = 1


def canonical_json(obj: Any) -> bytes:
    """Return the one byte form of ``obj`` that venvship writes: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tag_for_version(version: str) -> str:
    """Return the OCI tag for a PEP 440 version: tags allow no ``+``, so it becomes ``_``."""
    return version.replace("+", "_")


def _get(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ArtifactError(f"{where}: '{key}' is missing or not a {kind.__name__}")
    return value


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] | None = None
    artifact_type: str | None = None

    @property
    def title(self) -> str | None:
        return self.annotations.get(TITLE)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, data: Any, *, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: not an object")
        digest = _get(data, "digest", str, where)
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise ArtifactError(f"{where}: unsupported digest {digest!r}")
        size = _get(data, "size", int, where)
        if size < 0:
            raise ArtifactError(f"{where}: negative size")
        ann = data.get("annotations") or {}
        plat = data.get("platform")
        return cls(
            media_type=_get(data, "mediaType", str, where),
            digest=digest,
            size=size,
            annotations={str(k): str(v) for k, v in ann.items()},
            platform={str(k): str(v) for k, v in plat.items()} if isinstance(plat, dict) else None,
            artifact_type=data.get("artifactType"),
        )


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
            name=_get(data, "name", str, where),
            version=_get(data, "version", str, where),
            filename=_get(data, "filename", str, where),
            sha256=_get(data, "sha256", str, where),
            size=_get(data, "size", int, where),
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
        }

    @classmethod
    def from_json(cls, data: Any) -> VenvConfig:
        where = "config"
        if not isinstance(data, dict):
            raise ArtifactError("config: not a JSON object")
        if data.get("schema") != CONFIG_SCHEMA:
            raise ArtifactError(f"config: unsupported schema {data.get('schema')!r}")
        py = _get(data, "python", dict, where)
        plat = _get(data, "platform", dict, where)
        inst = _get(data, "install", dict, where)

        def strs(value: Any, key: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ArtifactError(f"config: '{key}' is not a list of strings")
            return tuple(value)

        return cls(
            name=_get(data, "name", str, where),
            version=_get(data, "version", str, where),
            recipe_digest=_get(data, "recipe_digest", str, where),
            install_path=_get(data, "install_path", str, where),
            python=PythonInfo(
                implementation=_get(py, "implementation", str, "config.python"),
                version=_get(py, "version", str, "config.python"),
                abi=_get(py, "abi", str, "config.python"),
                executable=_get(py, "executable", str, "config.python"),
            ),
            platform=PlatformInfo(
                os=_get(plat, "os", str, "config.platform"),
                architecture=_get(plat, "architecture", str, "config.platform"),
                variant=str(plat.get("variant", "")),
                distro=_get(plat, "distro", str, "config.platform"),
                glibc=_get(plat, "glibc", str, "config.platform"),
                distro_bound=bool(plat.get("distro_bound")),
            ),
            lock=tuple(
                Wheel.from_json(w, where=f"config.lock[{i}]")
                for i, w in enumerate(_get(data, "lock", list, where))
            ),
            tools=tuple(
                Wheel.from_json(w, where=f"config.tools[{i}]")
                for i, w in enumerate(_get(data, "tools", list, where))
            ),
            install_tool=_get(data, "install_tool", str, where),
            requirements=strs(data.get("requirements"), "requirements"),
            constraints=strs(data.get("constraints"), "constraints"),
            global_constraints=strs(data.get("global_constraints"), "global_constraints"),
            distro_package_state=_get(data, "distro_package_state", str, where),
            distro_cache_valid_time=int(data.get("distro_cache_valid_time", 600)),
            install_distro_packages=strs(inst.get("distro_packages"), "install.distro_packages"),
            install_pip_args=strs(inst.get("pip_args"), "install.pip_args"),
            install_env={str(k): str(v) for k, v in _get(inst, "env", dict, "config.install").items()},
            symlink_system_packages=strs(data.get("symlink_system_packages"), "symlink_system_packages"),
            facts=tuple(
                Fact(
                    file=_get(f, "file", str, "config.facts"),
                    section=_get(f, "section", str, "config.facts"),
                    option=_get(f, "option", str, "config.facts"),
                    value=_get(f, "value", str, "config.facts"),
                )
                for f in _get(data, "facts", list, where)
            ),
            builder={str(k): str(v) for k, v in _get(data, "builder", dict, where).items()},
            provenance={str(k): str(v) for k, v in (data.get("provenance") or {}).items()},
        )


@dataclass(frozen=True)
class Manifest:
    """A per-platform image manifest: the config descriptor and one layer per wheel."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return _document(
            MANIFEST_TYPE,
            {"config": self.config.to_json(), "layers": [layer.to_json() for layer in self.layers]},
            self.annotations,
        )

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "manifest") -> Manifest:
        data = _load(raw, where)
        if data.get("mediaType", MANIFEST_TYPE) != MANIFEST_TYPE or "layers" not in data:
            raise ArtifactError(f"{where}: not an OCI image manifest")
        config = Descriptor.from_json(data.get("config"), where=f"{where}.config")
        if config.media_type != CONFIG_TYPE:
            raise ArtifactError(f"{where}: not a venvship artifact (config {config.media_type})")
        layers = tuple(
            Descriptor.from_json(d, where=f"{where}.layers[{i}]")
            for i, d in enumerate(_get(data, "layers", list, where))
        )
        for i, layer in enumerate(layers):
            title = layer.title or ""
            if not title or "/" in title or "\\" in title or title in (".", ".."):
                raise ArtifactError(f"{where}.layers[{i}]: unsafe or missing title {title!r}")
        ann = data.get("annotations") or {}
        return cls(config=config, layers=layers, annotations={str(k): str(v) for k, v in ann.items()})


@dataclass(frozen=True)
class Index:
    """An image index: one entry per platform manifest."""

    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _document(INDEX_TYPE, {"manifests": [m.to_json() for m in self.manifests]}, self.annotations)

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "index") -> Index:
        data = _load(raw, where)
        if data.get("mediaType", INDEX_TYPE) != INDEX_TYPE or "manifests" not in data:
            raise ArtifactError(f"{where}: not an OCI image index")
        ann = data.get("annotations") or {}
        return cls(
            manifests=tuple(
                Descriptor.from_json(d, where=f"{where}.manifests[{i}]")
                for i, d in enumerate(_get(data, "manifests", list, where))
            ),
            annotations={str(k): str(v) for k, v in ann.items()},
        )


def platform_descriptor(config: VenvConfig, manifest_raw: bytes) -> Descriptor:
    """Return the index entry for ``config``'s per-platform manifest ``manifest_raw``.

    Example: ``Index(manifests=(platform_descriptor(config, raw),))``
    """
    plat = {"os": config.platform.os, "architecture": config.platform.architecture}
    if config.platform.variant:
        plat["variant"] = config.platform.variant
    ann = {ANN_PYTHON: config.python.abi, ANN_DISTRO: config.platform.distro}
    if config.platform.glibc:
        ann[ANN_GLIBC] = config.platform.glibc
    if config.platform.distro_bound:
        ann[ANN_DISTRO_BOUND] = "true"
    return Descriptor(
        media_type=MANIFEST_TYPE,
        digest=sha256_digest(manifest_raw),
        size=len(manifest_raw),
        annotations=ann,
        platform=plat,
        artifact_type=ARTIFACT_TYPE,
    )


def media_type_of(raw: bytes) -> str:
    """Return the ``mediaType`` of a manifest or index document (guessing from its keys if absent)."""
    data = _load(raw, "document")
    media = data.get("mediaType")
    if isinstance(media, str):
        return media
    return INDEX_TYPE if "manifests" in data else MANIFEST_TYPE


def _document(media_type: str, body: dict[str, Any], annotations: Mapping[str, str]) -> dict[str, Any]:
    """Return a venvship manifest or index document: the common header, ``body``, annotations if any."""
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "artifactType": ARTIFACT_TYPE, **body}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def _load(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{where}: not a JSON object")
    return data
