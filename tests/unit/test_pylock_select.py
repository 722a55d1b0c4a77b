"""Which of a lock's packages a build takes: the lock's markers evaluated against the
interpreter being built for, as its own pip reports its environment and tags.

The builder here is the tests' own venv (a real interpreter with pip), standing in for a builder
venv: selection needs nothing else from it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from venvship.builder.locked import locked_closure
from venvship.builder.sandbox import sandbox
from venvship.builder.toolvenv import Builder
from venvship.recipe.pylockfile import read_lock

SHA = "b" * 64
COMMIT = "c" * 40
LOCK = f"""\
lock-version = "1.0"
created-by = "test"

[[packages]]
name = "old"
version = "1.0"
marker = 'python_version < "3"'
wheels = [{{ url = "https://files.example/old-1.0-py2-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "new"
version = "2.0"
marker = 'python_version >= "3" and sys_platform == "{sys.platform}"'
wheels = [{{ url = "https://files.example/new-2.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "private"
version = "0.1"
vcs = {{ type = "git", url = "https://ci:s3cret-token@git.example/private.git", commit-id = "{COMMIT}" }}
"""


def _builder() -> Builder:
    return Builder(root=Path(sys.prefix), env=dict(os.environ), tools={})


def test_markers_decide_which_packages_a_platform_takes(tmp_path: Path) -> None:
    (tmp_path / "pylock.toml").write_text(LOCK)
    with sandbox(interpreters=[sys.executable]) as box:
        closure = locked_closure(
            read_lock(tmp_path / "pylock.toml"), _builder(), platform="test", sandbox=box
        )
    assert [(r.name, r.version, r.kind) for r in closure] == [
        ("new", "2.0", "wheel"),
        ("private", "0.1", "vcs"),
    ]


def test_a_token_in_a_locked_vcs_url_reaches_pip_but_not_the_published_source(tmp_path: Path) -> None:
    (tmp_path / "pylock.toml").write_text(LOCK)
    with sandbox(interpreters=[sys.executable]) as box:
        closure = locked_closure(
            read_lock(tmp_path / "pylock.toml"), _builder(), platform="test", sandbox=box
        )
    private = next(r for r in closure if r.name == "private")
    assert "s3cret-token" in private.spec
    assert private.source == f"git+https://git.example/private.git@{COMMIT}"


EXTRAS_LOCK = f"""\
lock-version = "1.0"
created-by = "test"
extras = ["fast"]
dependency-groups = ["docs", "test"]
default-groups = ["test"]

[[packages]]
name = "base"
version = "1.0"
wheels = [{{ url = "https://files.example/base-1.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "speedup"
version = "1.0"
marker = "'fast' in extras"
wheels = [{{ url = "https://files.example/speedup-1.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "sphinx"
version = "8.0"
marker = "'docs' in dependency_groups"
wheels = [{{ url = "https://files.example/sphinx-8.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "pytest"
version = "9.0"
marker = "'test' in dependency_groups"
wheels = [{{ url = "https://files.example/pytest-9.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]
"""


def _names(tmp_path: Path, **selection: object) -> list[str]:
    (tmp_path / "pylock.toml").write_text(EXTRAS_LOCK)
    with sandbox(interpreters=[sys.executable]) as box:
        closure = locked_closure(
            read_lock(tmp_path / "pylock.toml"),
            _builder(),
            platform="test",
            sandbox=box,
            **selection,  # type: ignore[arg-type]
        )
    return [r.name for r in closure]


def test_the_recipe_picks_the_locks_extras_and_groups(tmp_path: Path) -> None:
    # By default: no extras, and the lock's default-groups.
    assert _names(tmp_path) == ["base", "pytest"]
    assert _names(tmp_path, extras=("fast",), groups=("docs",)) == ["base", "speedup", "sphinx"]
    assert _names(tmp_path, groups=()) == ["base"]


def test_a_locked_archive_keeps_its_subdirectory_and_names_its_url(tmp_path: Path) -> None:
    (tmp_path / "pylock.toml").write_text(f"""\
lock-version = "1.0"
created-by = "test"

[[packages]]
name = "inner"
archive = {{ url = "https://files.example/mono.tar.gz", subdirectory = "pkgs/inner", hashes = {{ sha256 = "{SHA}" }} }}
""")
    lock = read_lock(tmp_path / "pylock.toml")
    from venvship.builder.locked import _resolved

    package = lock.lock.packages[0]
    assert package.archive is not None
    got = _resolved(lock, 0, package, package.archive)
    assert got.spec == f"inner @ https://files.example/mono.tar.gz#sha256={SHA}&subdirectory=pkgs/inner"
    assert got.url == "https://files.example/mono.tar.gz"  # a direct URL: the SBOM's purl names it
