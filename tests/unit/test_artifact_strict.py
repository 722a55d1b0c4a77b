"""Strict reads of what an artifact carries: each malformed config, manifest or index is one
ArtifactError line naming the key, never another exception (#10)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from venvship.artifact.documents import (
    CONFIG_TYPE,
    MANIFEST_TYPE,
    TITLE,
    Descriptor,
    Fact,
    Index,
    Manifest,
    PlatformInfo,
    PythonInfo,
    VenvConfig,
    Wheel,
    canonical_json,
)
from venvship.errors import ArtifactError

SHA = "ab" * 32
DIGEST = "sha256:" + SHA

CONFIG = VenvConfig(
    name="demo",
    version="1.0+local",
    recipe_digest=DIGEST,
    install_path="/openstack/venvs/demo-1.0",
    python=PythonInfo(implementation="cpython", version="3.11.2", abi="cp311", executable="python3"),
    platform=PlatformInfo(
        os="linux", architecture="amd64", distro="debian-12", glibc="2.36", distro_bound=False
    ),
    lock=(Wheel(name="demo", version="1.0", filename="demo-1.0-py3-none-any.whl", sha256=SHA, size=10),),
    tools=(Wheel(name="uv", version="0.13.9", filename="uv-0.13.9-py3-none-any.whl", sha256=SHA, size=10),),
    install_tool="uv",
    requirements=("demo",),
    constraints=(),
    global_constraints=(),
    distro_package_state="present",
    distro_cache_valid_time=600,
    install_distro_packages=("libxml2", "libvirt0:amd64", "gcc-c++"),
    install_pip_args=("-q", "--link-mode=copy"),
    install_env={"PBR_VERSION": "1.0"},
    symlink_system_packages=("python3-libvirt",),
    facts=(Fact(file="openstack_ansible", section="demo", option="venv_tag", value="1.0"),),
    builder={"venvship": "0.1.0"},
    provenance={"demo-1.0-py3-none-any.whl": "built"},
)
MANIFEST = Manifest(
    config=Descriptor(media_type=CONFIG_TYPE, digest=DIGEST, size=10),
    layers=(
        Descriptor(media_type="x", digest=DIGEST, size=10, annotations={TITLE: "demo-1.0-py3-none-any.whl"}),
    ),
    annotations={"org.opencontainers.image.version": "1.0"},
)
INDEX = Index(
    manifests=(
        Descriptor(
            media_type=MANIFEST_TYPE,
            digest=DIGEST,
            size=10,
            annotations={"io.venvship.python": "cp311"},
            platform={"os": "linux", "architecture": "amd64"},
        ),
    )
)
DEEP = b"[" * 100_000 + b"]" * 100_000


def deep(doc: dict[str, Any]) -> bytes:
    return canonical_json(doc)[:-1] + b',"deep":' + DEEP + b"}"


@dataclass(frozen=True)
class Bad:
    id: str
    kind: str  # config, manifest or index
    change: Callable[[dict[str, Any]], object]  # edits the valid document; may return raw bytes instead
    where: str  # how the message starts
    says: str


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Return an edit that sets ``path`` (``install.env``, ``lock.0.name``) to ``value``."""

    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            doc = doc[int(key)] if isinstance(doc, list) else doc[key]
        if isinstance(doc, list):
            doc[int(last)] = value
        else:
            doc[last] = value

    return edit


FACT = {"file": "f", "section": "s", "option": "o", "value": "v"}
BAD = [
    Bad("config-deep", "config", deep, "config: ", "nested deeper than 64 levels"),
    Bad("config-utf16", "config", lambda d: json.dumps(d).encode("utf-16"), "config: ", "not UTF-8"),
    Bad("name-nul", "config", put("name", "de\0mo"), "config.name: ", "contains a NUL character"),
    Bad("name-rule", "config", put("name", "Demo/x"), "config.name: ", "not a valid artifact name"),
    Bad("version-rule", "config", put("version", "1.0/../x"), "config.version: ", "not usable as a tag"),
    Bad(
        "install-path-system", "config", put("install_path", "/etc/venv"), "config.install_path: ", "in /etc"
    ),
    Bad(
        "install-path-dotdot",
        "config",
        put("install_path", "/srv/v/../../etc"),
        "config.install_path: ",
        "means /etc",
    ),
    Bad("env-key-nul", "config", put("install.env", {"A\0B": "1"}), "config.install.env: ", "NUL"),
    Bad(
        "env-key-equals",
        "config",
        put("install.env", {"LD_PRELOAD=x": "1"}),
        "config.install.env: ",
        "'LD_PRELOAD=x'",
    ),
    Bad(
        "env-value-list", "config", put("install.env", {"A": ["1"]}), "config.install.env.A: ", "not a string"
    ),
    Bad("env-not-object", "config", put("install.env", ["A=1"]), "config.install.env: ", "not an object"),
    Bad("pip-arg-nul", "config", put("install.pip_args", ["-q\0"]), "config.install.pip_args[0]: ", "NUL"),
    Bad(
        "pip-arg-target",
        "config",
        put("install.pip_args", ["--target", "/"]),
        "config.install.pip_args[0]: ",
        "--dest",
    ),
    Bad(
        "pip-arg-log",
        "config",
        put("install.pip_args", ["-q", "--log=/x"]),
        "config.install.pip_args[1]: ",
        "not allowed",
    ),
    Bad("lock-name-nul", "config", put("lock.0.name", "demo\0"), "config.lock[0].name: ", "NUL"),
    Bad(
        "lock-name-newline",
        "config",
        put("lock.0.name", "demo\n-e /x"),
        "config.lock[0].name: ",
        "distribution",
    ),
    Bad(
        "lock-sha-path",
        "config",
        put("lock.0.sha256", "../../../etc/passwd"),
        "config.lock[0].sha256: ",
        "hex",
    ),
    Bad("lock-size-bool", "config", put("lock.0.size", True), "config.lock[0]: ", "'size'"),
    Bad(
        "cache-time-text",
        "config",
        put("distro_cache_valid_time", "abc"),
        "config.distro_cache_valid_time: ",
        "'abc'",
    ),
    Bad(
        "cache-time-huge",
        "config",
        lambda d: canonical_json(d).replace(b":600", b":1e400"),
        "config.distro_cache_valid_time: ",
        "inf",
    ),
    Bad(
        "cache-time-negative",
        "config",
        put("distro_cache_valid_time", -1),
        "config.distro_cache_valid_time: ",
        "-1",
    ),
    Bad(
        "cache-time-bool",
        "config",
        put("distro_cache_valid_time", True),
        "config.distro_cache_valid_time: ",
        "True",
    ),
    Bad(
        "cache-time-years",
        "config",
        put("distro_cache_valid_time", 10**12),
        "config.distro_cache_valid_time: ",
        "from 0 to",
    ),
    Bad(
        "state",
        "config",
        put("distro_package_state", "purged"),
        "config.distro_package_state: ",
        "present, latest",
    ),
    Bad("install-tool", "config", put("install_tool", "/bin/sh"), "config.install_tool: ", "pip, uv"),
    Bad("fact-not-object", "config", put("facts", ["file=x"]), "config.facts[0]: ", "not an object"),
    Bad(
        "fact-file-dotdot",
        "config",
        put("facts", [{**FACT, "file": ".."}]),
        "config.facts[0].file: ",
        "plain name",
    ),
    Bad(
        "fact-file-path",
        "config",
        put("facts", [{**FACT, "file": "../../etc/cron.d/x"}]),
        "config.facts[0].file: ",
        "plain name",
    ),
    Bad(
        "fact-section-ini",
        "config",
        put("facts", [{**FACT, "section": "s]\n[t"}]),
        "config.facts[0].section: ",
        "plain name",
    ),
    Bad(
        "fact-section-default",
        "config",
        put("facts", [{**FACT, "section": "DEFAULT"}]),
        "config.facts[0].section: ",
        "reserved",
    ),
    Bad(
        "fact-option-equals",
        "config",
        put("facts", [{**FACT, "option": "a = b"}]),
        "config.facts[0].option: ",
        "plain name",
    ),
    Bad(
        "fact-value-newline",
        "config",
        put("facts", [{**FACT, "value": "1\n[evil]"}]),
        "config.facts[0].value: ",
        "one line",
    ),
    Bad("fact-value-number", "config", put("facts", [{**FACT, "value": 1}]), "config.facts[0]: ", "'value'"),
    Bad(
        "apt-option",
        "config",
        put("install.distro_packages", ["-oDir::Bin::dpkg=/tmp/x"]),
        "config.install.distro_packages[0]: ",
        "not a Debian or RPM package name",
    ),
    Bad(
        "apt-pattern",
        "config",
        put("install.distro_packages", ["?name(.)"]),
        "config.install.distro_packages[0]: ",
        "package name",
    ),
    Bad(
        "symlink-option",
        "config",
        put("symlink_system_packages", ["--admindir=/tmp"]),
        "config.symlink_system_packages[0]: ",
        "package name",
    ),
    Bad(
        "distro-bound-text",
        "config",
        put("platform.distro_bound", "yes"),
        "config.platform.distro_bound: ",
        "boolean",
    ),
    Bad(
        "builder-list",
        "config",
        put("builder", {"venvship": ["0.1"]}),
        "config.builder.venvship: ",
        "not a string",
    ),
    Bad("manifest-deep", "manifest", deep, "manifest: ", "nested deeper than 64 levels"),
    Bad(
        "manifest-annotation-list",
        "manifest",
        put("annotations", {"a": ["b"]}),
        "manifest.annotations.a: ",
        "not a string",
    ),
    Bad(
        "manifest-annotations-list",
        "manifest",
        put("annotations", ["a"]),
        "manifest.annotations: ",
        "not an object",
    ),
    Bad(
        "layer-title-list",
        "manifest",
        lambda d: d["layers"][0]["annotations"].update({TITLE: ["x"]}),
        "manifest.layers[0].annotations.",
        "not a string",
    ),
    Bad(
        "layer-title-nul",
        "manifest",
        lambda d: d["layers"][0]["annotations"].update({TITLE: "x\0.whl"}),
        "manifest.layers[0].annotations.",
        "NUL",
    ),
    Bad("layer-size-bool", "manifest", put("layers.0.size", False), "manifest.layers[0]: ", "'size'"),
    Bad(
        "config-digest-path",
        "manifest",
        put("config.digest", "sha256:" + "../" * 21 + "x"),
        "manifest.config: ",
        "unsupported digest",
    ),
    Bad("index-deep", "index", deep, "index: ", "nested deeper than 64 levels"),
    Bad(
        "index-platform-list",
        "index",
        put("manifests.0.platform", {"os": "linux", "os.features": ["x"]}),
        "index.manifests[0].platform.os.features: ",
        "not a string",
    ),
    Bad(
        "index-annotation-nul",
        "index",
        put("manifests.0.annotations", {"io.venvship.python": "cp3\0"}),
        "index.manifests[0].annotations.io.venvship.python: ",
        "NUL",
    ),
    Bad(
        "index-artifact-type",
        "index",
        put("manifests.0.artifactType", {"a": 1}),
        "index.manifests[0]: ",
        "artifactType",
    ),
]
VALID = {"config": CONFIG.to_json(), "manifest": MANIFEST.to_json(), "index": INDEX.to_json()}
READ: dict[str, Callable[[bytes], object]] = {
    "config": VenvConfig.from_bytes,
    "manifest": Manifest.from_bytes,
    "index": Index.from_bytes,
}


def test_valid_documents_read_back() -> None:
    assert VenvConfig.from_bytes(canonical_json(VALID["config"])) == CONFIG
    assert Manifest.from_bytes(canonical_json(VALID["manifest"])) == MANIFEST
    assert Index.from_bytes(canonical_json(VALID["index"])) == INDEX


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_malformed_is_one_artifact_error_line(bad: Bad) -> None:
    doc = copy.deepcopy(VALID[bad.kind])
    changed = bad.change(doc)
    raw = changed if isinstance(changed, bytes) else canonical_json(doc)
    with pytest.raises(ArtifactError) as info:
        READ[bad.kind](raw)
    message = str(info.value)
    assert "\n" not in message and "\0" not in message and len(message) < 400, message
    assert message.startswith(bad.where) and bad.says in message, message


def test_parsed_config_with_nul_is_refused_too() -> None:
    """Callers that parse themselves (``json.loads``) and hand the data over get the same checks."""
    doc = copy.deepcopy(VALID["config"])
    doc["requirements"] = ["demo\0"]
    with pytest.raises(ArtifactError, match=r"^config\.requirements\[0\]: contains a NUL character$"):
        VenvConfig.from_json(doc)
