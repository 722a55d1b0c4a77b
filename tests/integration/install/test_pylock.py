"""PEP 751 locks in and out: locks made by the real ``pip lock`` and ``uv pip compile`` build
artifacts holding exactly their packages, and an artifact's exported lock reinstalls offline
with the real uv and pip.

The packages are the tests' own (tests/factories.py), served from a local find-links folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.factories import make_project
from tests.hostfacts import PLATFORM_KEY
from tests.integration.conftest import LocalIndex, RecipeWriter
from venvship.artifact.documents import Manifest, VenvConfig
from venvship.builder.recipebuild import BuildOptions, build_recipe
from venvship.cli import venv_pull_main, venvship_main
from venvship.oci.layout import Layout
from venvship.recipe.recipefile import load_recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UV = str(Path(sys.executable).parent / "uv")
QUIET_PIP = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex) -> Path:
    """A find-links folder: the local index's sdists and tool wheels, and a pure wheel ``delta``."""
    folder = tmp_path_factory.mktemp("links")
    for item in local_index.dist.iterdir():
        shutil.copy(item, folder)
    project = make_project(tmp_path_factory.mktemp("delta"), "delta", "4.0")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            folder,
            project,
        ],
        check=True,
        env=QUIET_PIP,
    )
    return folder


def run(argv: list[Any], **kw: Any) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout}\n{proc.stderr}"


def pip_lock(links: Path, out: Path, *requirements: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "lock",
            "-q",
            "--no-build-isolation",
            "--no-index",
            "--find-links",
            links,
            *requirements,
            "-o",
            out,
        ],
        env=QUIET_PIP,
    )
    return out


def uv_lock(links: Path, out: Path, *requirements: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = out.with_suffix(".in")
    inputs.write_text("".join(f"{r}\n" for r in requirements))
    run(
        [
            UV,
            "pip",
            "compile",
            "-q",
            "--format",
            "pylock.toml",
            "--no-index",
            "--find-links",
            links,
            "--python",
            sys.executable,
            inputs,
            "-o",
            out,
        ]
    )
    return out


def lock_recipe(write_recipe: RecipeWriter, lock: Path, **keys: object) -> Path:
    """Return a recipe beside ``lock`` that names it (and no packages, unless given)."""
    recipe = write_recipe(**keys)
    text = recipe.read_text().replace('packages = ["alpha"]\n', "")
    recipe.write_text(
        text.replace("[venv]\n", f'[venv]\nlock = "{os.path.relpath(lock, recipe.parent)}"\n', 1)
    )
    return recipe


WINDOWS_ONLY = f"""
[[packages]]
name = "winonly"
version = "1.0"
marker = 'sys_platform == "win32"'
wheels = [{{ url = "https://files.invalid/winonly-1.0-py3-none-any.whl", hashes = {{ sha256 = "{"1" * 64}" }} }}]
"""


def locked_set(lock: Path) -> dict[str, str]:
    data = tomllib.loads(lock.read_text())
    return {p["name"]: p["version"] for p in data["packages"]}


def config_of(layout: Layout, ref: str) -> VenvConfig:
    manifest = Manifest.from_bytes(layout.read_blob(layout.resolve(ref).digest))
    return VenvConfig.from_json(json.loads(layout.read_blob(manifest.config.digest)))


def installed(python: Path) -> dict[str, str]:
    """Return every distribution ``python``'s venv holds, as ``pip list`` names them."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
        env=QUIET_PIP,
    ).stdout
    return {p["name"]: p["version"] for p in json.loads(out)}


def pull(tmp_path: Path, ref: str, capsys: pytest.CaptureFixture[str]) -> Path:
    dest = tmp_path / "venvs" / "demo"
    paths = ["--dest", dest, "--cache", tmp_path / "blobs", "--facts-dir", tmp_path / "facts"]
    capsys.readouterr()
    code = venv_pull_main.main(["install", ref, *map(str, paths), "--no-distro-packages"])
    assert code == 0, capsys.readouterr().err
    return dest


@pytest.mark.parametrize("locker", [pip_lock, uv_lock], ids=["pip-lock", "uv-pip-compile"])
def test_a_lock_builds_an_artifact_holding_exactly_its_packages(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    links: Path,
    cache: Path,
    locker: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lock = locker(links, tmp_path / "recipes" / "pylock.toml", "alpha==1.0", "delta")
    want = locked_set(lock)
    assert want == {"alpha": "1.0", "beta": "2.0", "delta": "4.0"}
    # A package whose marker excludes this platform: its file is nowhere, it must not be fetched.
    with lock.open("a") as fh:
        fh.write(WINDOWS_ONLY)
    # The recipe's pip-args offer alpha 1.1 too: a resolve would take it, the lock does not.
    layout = Layout.create(tmp_path / "oci")
    recipe = lock_recipe(write_recipe, lock)
    result = build_recipe(load_recipe(recipe), output=layout, options=BuildOptions(cache=cache))

    assert result.status == "built"
    config = config_of(layout, f"demo:1.0-{PLATFORM_KEY}")
    assert {w.name: w.version for w in config.lock} == want
    again = build_recipe(load_recipe(recipe), output=layout, options=BuildOptions(cache=cache))
    assert again.status == "unchanged"
    # A wheel the lock names is the very file: its sha256 is the lock's.
    lock_data = tomllib.loads(lock.read_text())
    delta = next(p for p in lock_data["packages"] if p["name"] == "delta")
    assert {w.name: w.sha256 for w in config.lock}["delta"] == delta["wheels"][0]["hashes"]["sha256"]

    dest = pull(tmp_path, f"oci:{layout.root}:demo:1.0", capsys)
    assert {k: v for k, v in installed(dest / "bin" / "python").items() if k != "pip"} == want


def test_an_exported_lock_reinstalls_offline_with_uv_and_pip(
    tmp_path: Path, write_recipe: RecipeWriter, links: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = pip_lock(links, tmp_path / "recipes" / "pylock.toml", "alpha==1.0", "delta")
    layout = Layout.create(tmp_path / "oci")
    build_recipe(
        load_recipe(lock_recipe(write_recipe, lock)), output=layout, options=BuildOptions(cache=cache)
    )
    ref = f"oci:{layout.root}:demo:1.0"
    out = tmp_path / "exported"
    # A wheel blob changed in the layout (same digest name, other bytes) is refused, nothing written.
    forged = tmp_path / "forged"
    shutil.copytree(layout.root, forged)
    wheel = next(w for w in config_of(layout, f"demo:1.0-{PLATFORM_KEY}").lock if w.name == "delta")
    Layout.open(forged).blob_path(wheel.digest).write_bytes(b"not the wheel")
    for argv, says in (
        ([f"oci:{forged}:demo:1.0", "--platform", PLATFORM_KEY], f"{wheel.digest}: "),
        (
            [ref, "--platform", "debian-12-s390x-cp311"],
            f"no platform debian-12-s390x-cp311 (it has {PLATFORM_KEY})",
        ),
    ):
        capsys.readouterr()
        assert venvship_main.main(["export", *argv, "--output", str(out)]) == 1
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert sorted(p.name for p in tmp_path.iterdir() if "exported" in p.name) == []
    capsys.readouterr()
    code = venvship_main.main(["export", ref, "--platform", PLATFORM_KEY, "--output", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["packages"] == 3
    # An existing folder is never written into.
    assert venvship_main.main(["export", ref, "--output", str(out)]) == 1
    assert f"{out}: already exists; name a new folder" in capsys.readouterr().err
    config = config_of(layout, f"demo:1.0-{PLATFORM_KEY}")
    want = {w.name: w.version for w in config.lock}
    assert sorted(p.name for p in (out / "wheels").iterdir()) == sorted(w.filename for w in config.lock)

    # uv: a fresh venv, no index, no network.
    uv_venv = tmp_path / "uv-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", uv_venv], check=True)
    run(
        [
            UV,
            "pip",
            "sync",
            "-q",
            "--offline",
            "--no-index",
            "--python",
            uv_venv / "bin" / "python",
            out / "pylock.toml",
        ],
        cwd=tmp_path,
    )
    assert installed(uv_venv / "bin" / "python") == want
    # pip 26.1+ installs from a pylock.toml (-r); the tests' pip is newer.
    pip_venv = tmp_path / "pip-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", pip_venv], check=True)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            pip_venv / "bin" / "python",
            "install",
            "-q",
            "--no-index",
            "-r",
            out / "pylock.toml",
        ],
        env=QUIET_PIP,
        cwd=tmp_path,
    )
    assert installed(pip_venv / "bin" / "python") == want
    # And back in: a recipe naming the exported lock builds the very same wheels.
    again = Layout.create(tmp_path / "oci-again")
    build_recipe(
        load_recipe(lock_recipe(write_recipe, out / "pylock.toml", name="again")),
        output=again,
        options=BuildOptions(cache=cache),
    )
    rebuilt = config_of(again, f"again:1.0-{PLATFORM_KEY}")
    assert {(w.filename, w.sha256) for w in rebuilt.lock} == {(w.filename, w.sha256) for w in config.lock}


def refused(tmp_path: Path, recipe: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Build ``recipe`` with the CLI; return its one error line, checking nothing was written."""
    out = tmp_path / "oci"
    capsys.readouterr()
    assert (
        venvship_main.main(["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache)]) == 1
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("venvship: error: ")]
    assert len(lines) == 1, err
    assert not out.exists() or Layout.open(out).refs() == {}
    return lines[0].removeprefix("venvship: error: ")


OTHER_WHEEL = (
    '\n[[packages]]\nname = "zeta"\nversion = "1.0"\n'
    'wheels = [{ url = "https://files.example/zeta-1.0-cp311-cp311-win_amd64.whl", '
    f'hashes = {{ sha256 = "{"0" * 64}" }} }}]\n'
)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (
            ('created-by = "pip"', 'created-by = "pip"\nenvironments = [\'sys_platform == "win32"\']'),
            "environments",
        ),
        (('created-by = "pip"', 'created-by = "pip"\nrequires-python = "<3"'), "requires-python"),
        (("\n[[packages]]", OTHER_WHEEL + "\n[[packages]]"), "packages[0]"),
    ],
    ids=["environments", "requires-python", "wheel-for-another-platform"],
)
def test_a_lock_that_does_not_cover_the_platform_being_built_is_refused_in_one_line(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    links: Path,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    key: str,
) -> None:
    lock = pip_lock(links, tmp_path / "recipes" / "pylock.toml", "alpha==1.0")
    text = lock.read_text()
    assert change[0] in text
    lock.write_text(text.replace(change[0], change[1], 1))
    line = refused(tmp_path, lock_recipe(write_recipe, lock), cache, capsys)
    assert line.startswith(f"{lock}: {key}: the lock does not cover {PLATFORM_KEY} (python "), line


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"packages": ["alpha>=1.1"]}, "venv.packages: alpha>=1.1: the lock has alpha 1.0"),
        ({"packages": ["alpha", "gamma"]}, "venv.packages: gamma is not in the lock"),
        ({"constraints": ["beta<2"]}, "venv.constraints: beta<2: the lock has beta 2.0"),
        ({"global_constraints": ["beta<2"]}, "venv.global-constraints: beta<2: the lock has beta 2.0"),
    ],
    ids=["version", "missing", "constraint", "global-constraint"],
)
def test_packages_and_constraints_beside_a_lock_must_agree_with_it(
    tmp_path: Path,
    write_recipe: RecipeWriter,
    links: Path,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
    keys: dict[str, object],
    says: str,
) -> None:
    pip_lock(links, tmp_path / "recipes" / "pylock.toml", "alpha==1.0")
    recipe = write_recipe(**keys)
    text = recipe.read_text().replace("[venv]\n", '[venv]\nlock = "pylock.toml"\n', 1)
    recipe.write_text(text)
    assert refused(tmp_path, recipe, cache, capsys) == f"{recipe}: {says}"


def test_a_local_file_that_is_not_the_one_the_lock_hashed_is_refused(
    tmp_path: Path, write_recipe: RecipeWriter, links: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The attacker swaps the sdist the lock names for another of the same name.
    mine = tmp_path / "mine"
    shutil.copytree(links, mine)
    lock = pip_lock(mine, tmp_path / "recipes" / "pylock.toml", "alpha==1.0")
    sdist = mine / "alpha-1.0.tar.gz"
    sdist.write_bytes((links / "alpha-1.1.tar.gz").read_bytes())
    line = refused(tmp_path, lock_recipe(write_recipe, lock), cache, capsys)
    assert line == f"{lock}: packages[0]: {sdist} does not match its sha256 in the lock"


def test_a_vcs_entry_is_built_at_its_commit_and_its_version_read_from_its_metadata(
    tmp_path: Path, write_recipe: RecipeWriter, links: Path, local_index: LocalIndex, cache: Path
) -> None:
    git = f"gamma @ {local_index.git_url}@{local_index.git_sha}"
    lock = pip_lock(links, tmp_path / "recipes" / "pylock.toml", "delta", git)
    gamma = next(p for p in tomllib.loads(lock.read_text())["packages"] if p["name"] == "gamma")
    assert (
        "version" not in gamma and gamma["vcs"]["commit-id"] == local_index.git_sha
    )  # as pip lock writes it
    layout = Layout.create(tmp_path / "oci")
    build_recipe(
        load_recipe(lock_recipe(write_recipe, lock)), output=layout, options=BuildOptions(cache=cache)
    )
    config = config_of(layout, f"demo:1.0-{PLATFORM_KEY}")
    assert {w.name: w.version for w in config.lock} == {"delta": "4.0", "gamma": "3.0.dev4"}
    assert (
        config.vcs_source("gamma-3.0.dev4-py3-none-any.whl") == f"{local_index.git_url}@{local_index.git_sha}"
    )
