"""A recipe's PEP 751 lock (``lock = "pylock.toml"``): read with packaging's reader, refused in one
line naming the lock file and the key when it cannot pin what it holds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from venvship.cli.venvship_main import main
from venvship.errors import RecipeError
from venvship.recipe.recipefile import load_recipe

RECIPE = """\
[venv]
name = "demo"
version = "1.0"
install-path = "/opt/venvs/demo"
lock = "pylock.toml"
"""
SHA = "a" * 64
GOOD = f"""\
lock-version = "1.0"
created-by = "test"

[[packages]]
name = "alpha"
version = "1.0"
sdist = {{ url = "https://files.example/alpha-1.0.tar.gz", hashes = {{ sha256 = "{SHA}" }} }}

[[packages]]
name = "beta"
version = "2.0"
wheels = [{{ url = "https://files.example/beta-2.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]
"""


def write(folder: Path, lock: str, recipe: str = RECIPE) -> Path:
    (folder / "pylock.toml").write_text(textwrap.dedent(lock))
    path = folder / "demo.toml"
    path.write_text(recipe)
    return path


def test_a_recipe_may_name_a_lock_instead_of_packages(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD))
    assert recipe.lock == (tmp_path / "pylock.toml").resolve()
    assert recipe.packages == ()


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        # No hashes at all: nothing pins the file.
        (
            (f', hashes = {{ sha256 = "{SHA}" }} }}', " }"),
            "packages[0].sdist.hashes",
            "Missing required value",
        ),
        # Only a hash venvship does not check files by.
        ((f'sha256 = "{SHA}"', 'md5 = "0123"'), "packages[0].sdist.hashes", "no sha256"),
        # A local folder: no hash can pin it.
        (
            (
                'sdist = { url = "https://files.example/alpha-1.0.tar.gz", hashes = { sha256 = "'
                + SHA
                + '" } }',
                'directory = { path = "alpha" }',
            ),
            "packages[0].directory",
            "pinned by no hash",
        ),
        (('\nversion = "1.0"\n', "\n"), "packages[0].version", "no version"),
        (('lock-version = "1.0"', 'lock-version = "2.0"'), "lock-version", "not supported"),
    ],
    ids=["no-hashes", "no-sha256", "directory", "no-version", "lock-version-2"],
)
def test_a_lock_that_does_not_pin_its_files_is_refused_in_one_line(
    tmp_path: Path, change: tuple[str, str], key: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = change
    assert old in GOOD
    recipe = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert info.value.where == f"{(tmp_path / 'pylock.toml').resolve()}: {key}"
    assert says in info.value.message
    # The CLI says it in one line, exit 1, no traceback.
    assert main(["check", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert f"pylock.toml: {key}: " in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if "pylock.toml" in ln]) == 1


def test_a_missing_lock_file_is_named_by_the_recipe_key(tmp_path: Path) -> None:
    path = tmp_path / "demo.toml"
    path.write_text(RECIPE)
    with pytest.raises(RecipeError, match=r"venv\.lock: lock file not found: pylock\.toml"):
        load_recipe(path)


def test_a_shared_defaults_file_may_not_name_a_lock(tmp_path: Path) -> None:
    (tmp_path / "defaults.toml").write_text('[defaults]\nlock = "pylock.toml"\n')
    with pytest.raises(RecipeError, match=r"defaults\.lock"):
        load_recipe(write(tmp_path, GOOD, RECIPE.replace('lock = "pylock.toml"\n', 'packages = ["x"]\n')))


SELECTING = GOOD.replace(
    'created-by = "test"\n', 'created-by = "test"\nextras = ["fast"]\ndependency-groups = ["docs"]\n'
)


def test_a_recipe_names_the_locks_extras_and_groups(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path, SELECTING, RECIPE + 'lock-extras = ["Fast"]\nlock-groups = ["docs"]\n')
    )
    assert (recipe.lock_extras, recipe.lock_groups) == (("Fast",), ("docs",))
    assert load_recipe(write(tmp_path, SELECTING)).lock_groups is None  # the lock's default-groups


@pytest.mark.parametrize(
    ("lines", "key", "says"),
    [
        (
            'lock-extras = ["slow"]\n',
            "venv.lock-extras[0]",
            "slow: not in pylock.toml's extras (it declares: fast)",
        ),
        (
            'lock-groups = ["docs", "lint"]\n',
            "venv.lock-groups[1]",
            "lint: not in pylock.toml's dependency-groups",
        ),
    ],
)
def test_an_extra_or_group_the_lock_does_not_declare_is_named(
    tmp_path: Path, lines: str, key: str, says: str
) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, SELECTING, RECIPE + lines))
    assert key in str(err.value) and says in str(err.value)


def test_lock_extras_need_a_lock(tmp_path: Path) -> None:
    recipe = RECIPE.replace('lock = "pylock.toml"\n', 'packages = ["alpha"]\nlock-extras = ["fast"]\n')
    with pytest.raises(RecipeError, match=r"venv.lock-extras.*only with a lock"):
        load_recipe(write(tmp_path, GOOD, recipe))
