"""A build cache another user can change, attacked (#20).

The cache holds what a build believes without checking again: the stored resolution says which
file each distribution comes from and its sha256. Before #20 a build took a cache folder that
``nobody`` had made in a sticky shared folder (``--cache-dir /tmp/venvship-cache``, squatted
before the build's first run): ``nobody`` then moved ``resolutions/`` aside, wrote their own,
and the next build (a version bump reuses the resolution) locked and would have signed a wheel
built from ``nobody``'s sdist.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import RecipeWriter
from tests.needs import needs_nobody
from venvship.cli import venvship_main

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

pytestmark = needs_nobody


def _shared(tmp_path: Path, mode: int) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    return shared


def _build(recipe: Path, cache: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    argv = ["build", str(recipe), "--output", f"oci:{out}", "--cache-dir", str(cache), "--no-distro-packages"]
    code = venvship_main.main(argv)
    return code, capsys.readouterr().err


def test_a_cache_folder_another_user_made_is_refused(
    write_recipe: RecipeWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = _shared(tmp_path, 0o1777)  # like /tmp
    squatted = shared / "venvship-cache"
    subprocess.run([*NOBODY, "mkdir", str(squatted)], check=True)
    code, err = _build(write_recipe(), squatted, tmp_path / "out", capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert str(squatted) in line and "owner nobody" in line
    assert sorted(p.name for p in squatted.iterdir()) == []  # nothing built, nothing stored there


def test_a_cache_in_a_folder_others_may_rename_in_is_refused(
    write_recipe: RecipeWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = _shared(tmp_path, 0o777)  # not sticky: nobody may rename root's cache and put theirs there
    cache = shared / "cache"
    code, err = _build(write_recipe(), cache, tmp_path / "out", capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert str(shared) in line and "writable by other users" in line
    assert sorted(p.name for p in cache.iterdir()) == []


def test_a_cache_others_may_write_is_refused(
    write_recipe: RecipeWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    code, err = _build(write_recipe(), cache, tmp_path / "out", capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert str(cache) in line and "mode 0777" in line
    assert sorted(p.name for p in cache.iterdir()) == []


def test_a_missing_cache_is_made_for_this_user_alone(tmp_path: Path) -> None:
    from venvship.builder.cachedir import build_cache

    made = build_cache(tmp_path / "a" / "cache")
    assert made.stat().st_mode & 0o777 == 0o700 and made.stat().st_uid == os.geteuid()
