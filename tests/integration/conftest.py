"""Fixtures for build-stage tests: a local package index of tiny packages and a recipe writer."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.factories import git_repo, make_project, make_sdist
from tests.suites import ROOT_SUITES


@dataclass(frozen=True)
class LocalIndex:
    """A find-links folder of sdists and tool wheels, and a git repository pinned by SHA."""

    dist: Path
    git_url: str
    git_sha: str
    projects: Path

    def pip_args(self) -> list[str]:
        return ["--no-index", "--find-links", str(self.dist)]


@pytest.fixture(scope="session")
def local_index(tmp_path_factory: pytest.TempPathFactory, tool_wheels: Path) -> LocalIndex:
    root = tmp_path_factory.mktemp("index")
    # As root, pip runs as the build user (nobody), who must read the index, as on a real host.
    root.chmod(0o711)
    dist = root / "dist"
    projects = root / "projects"
    make_sdist(make_project(projects, "alpha", "1.0", deps=["beta>=2"]), dist)
    make_sdist(make_project(projects, "alpha", "1.1", deps=["beta>=2"]), dist)
    make_sdist(make_project(projects, "beta", "2.0", c_extension=True), dist)
    make_sdist(make_project(projects, "broken", "1.0"), dist)
    make_sdist(make_project(projects, "bulky", "1.0", payload=2 << 20), dist)
    gamma = make_project(projects, "gamma", "3.0.dev4")
    sha = git_repo(gamma)
    for wheel in tool_wheels.glob("*.whl"):
        shutil.copy(wheel, dist)
    return LocalIndex(dist=dist, git_url=f"git+file://{gamma}", git_sha=sha, projects=projects)


RecipeWriter = Callable[..., Path]


@pytest.fixture
def write_recipe(tmp_path: Path, local_index: LocalIndex) -> RecipeWriter:
    """Return a function writing a recipe for the local index; keyword args override keys."""

    def write(
        name: str = "demo", *, packages: list[str] | None = None, extra: str = "", **keys: object
    ) -> Path:
        import json

        values: dict[str, object] = {
            "name": name,
            "version": "1.0",
            "install-path": f"/opt/venvs/{name}",
            "packages": packages or ["alpha"],
            "build-requirements": ["setuptools", "wheel"],
        }
        values.update({k.replace("_", "-"): v for k, v in keys.items()})
        body = "[venv]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        body += f"\n[venv.build]\npip-args = {json.dumps(local_index.pip_args())}\n" + extra
        path = tmp_path / "recipes" / f"{name}.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(body)
        return path

    return write


@pytest.fixture(scope="session")
def shared_builders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builders")


@pytest.fixture
def cache(tmp_path_factory: pytest.TempPathFactory, shared_builders: Path) -> Path:
    """A fresh build cache per test (so what is built is each test's own), sharing builder venvs."""
    path = tmp_path_factory.mktemp("cache")
    (path / "builders").symlink_to(shared_builders)
    return path


INTEGRATION = Path(__file__).parent
# The suites that need Debian roots, run last in this order: their roots are debootstrapped in the
# background from collection on (a few minutes each when the cache lacks them, the arm64 one
# emulated), behind every other test (#24).
LAST = ROOT_SUITES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the suites that need Debian roots last, and start making the roots they use now."""
    folders = {part for item in items for part in item.path.parents}

    def rank(item: pytest.Item) -> int:
        for n, name in enumerate(LAST, start=1):
            if INTEGRATION / name in item.path.parents:
                return n
        return 0

    items.sort(key=rank)  # stable: the order within each group stays
    from tests.integration.roots import DEBIAN12, start

    amd64 = [DEBIAN12] if INTEGRATION / "role" in folders else []
    if INTEGRATION / "targets" in folders:
        from tests.integration.targets.roots import AMD64

        amd64 = list(AMD64)
    start(*amd64)
    if folders & {INTEGRATION / name for name in LAST}:
        from tests.integration.arm64.conftest import ARM64, prepare_host

        start(ARM64, prepare=prepare_host)
