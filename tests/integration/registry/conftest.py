"""Session-scoped docker-registry servers on 127.0.0.1: open, htpasswd, bearer token and TLS."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.conftest import LocalIndex
from venvship.artifact.documents import Descriptor, Manifest, VenvConfig
from venvship.artifact.layerformat import LAYER_TYPE
from venvship.builder.recipebuild import BuildOptions, build_recipe
from venvship.oci.layout import Layout
from venvship.recipe.recipefile import load_recipe

from ._pki import TokenServer, make_tls_certs
from ._support import REGISTRY_BIN, RegistryServer, htpasswd_auth, start_registry


@pytest.fixture(scope="session", autouse=True)
def _needs_registry() -> None:
    if not Path(REGISTRY_BIN).exists():
        pytest.fail(f"{REGISTRY_BIN} is missing: apt-get install docker-registry (.ci/run does this)")
    for tool in ("htpasswd", "openssl", "skopeo"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install apache2-utils openssl skopeo")


@pytest.fixture(autouse=True)
def home_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep real Docker/podman credentials out of every test, and see what a test writes there."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "SSL_CERT_FILE"):
        monkeypatch.delenv(key, raising=False)
    return home


@pytest.fixture(autouse=True)
def _restore_venvship_logger() -> Iterator[None]:
    """Undo what a CLI ``main()`` does to the ``venvship`` logger (handler on a captured stderr,
    no propagation), so later tests' ``caplog`` still sees the records."""
    log = logging.getLogger("venvship")
    saved = (log.handlers[:], log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved


@dataclass(frozen=True)
class BuiltDemo:
    """The tests' ``demo`` recipe (alpha, and beta with a C extension), built once into a layout."""

    recipe: Path
    layout: Layout
    platform_tag: str  # 1.0-<platform key>

    @property
    def platform_ref(self) -> str:
        return f"demo:{self.platform_tag}"

    def manifest(self) -> Manifest:
        return Manifest.from_bytes(self.layout.read_blob(self.layout.resolve(self.platform_ref).digest))

    def layers(self) -> list[Descriptor]:
        """The manifest's ready-to-run layers: what an install pulls."""
        return [layer for layer in self.manifest().layers if layer.media_type == LAYER_TYPE]

    def config(self) -> VenvConfig:
        return VenvConfig.from_json(json.loads(self.layout.read_blob(self.manifest().config.digest)))


@pytest.fixture(scope="session")
def built_demo(
    tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex, shared_builders: Path
) -> BuiltDemo:
    """A real, installable artifact for registry round trips (built once per session)."""
    root = tmp_path_factory.mktemp("built-demo")
    recipe = root / "recipes" / "demo.toml"
    recipe.parent.mkdir()
    recipe.write_text(
        "[venv]\n"
        'name = "demo"\nversion = "1.0"\ninstall-path = "/opt/venvs/demo"\npackages = ["alpha", "bulky"]\n'
        'build-requirements = ["setuptools", "wheel"]\n'
        f"\n[venv.build]\npip-args = {json.dumps(local_index.pip_args())}\n"
    )
    cache = root / "cache"
    cache.mkdir()
    (cache / "builders").symlink_to(shared_builders)
    layout = Layout.create(root / "oci")
    result = build_recipe(load_recipe(recipe), output=layout, options=BuildOptions(cache=cache))
    return BuiltDemo(recipe=recipe, layout=layout, platform_tag=result.ref.split(":", 1)[1])


@pytest.fixture(scope="session")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_registry(tmp_path_factory.mktemp("reg-open"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    work = tmp_path_factory.mktemp("reg-htpasswd")
    server = start_registry(work, auth=htpasswd_auth(work))
    server.extra["needs_auth"] = True
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    work = tmp_path_factory.mktemp("reg-token")
    tokens = TokenServer(work / "token")
    try:
        server = start_registry(work, auth=tokens.registry_auth(), token=tokens)
        server.extra["needs_auth"] = True
        yield server
        server.stop()
    finally:
        tokens.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    work = tmp_path_factory.mktemp("reg-tls")
    server = start_registry(work, tls=make_tls_certs(work / "tls"))
    yield server
    server.stop()


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A registry of this test alone (it may kill it)."""
    server = start_registry(tmp_path / "reg")
    yield server
    server.stop()


@pytest.fixture(params=["open", "htpasswd", "token", "tls"])
def any_registry(request: pytest.FixtureRequest) -> RegistryServer:
    """Each registry variant in turn."""
    server: RegistryServer = request.getfixturevalue(f"{request.param}_registry")
    return server
