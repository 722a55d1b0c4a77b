"""``venvship cache prune`` over a cache real builds made: what a build used stays, the rest goes,
and a build after a prune works as on a fresh cache."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.conftest import RecipeWriter
from venvship.cli.venvship_main import main

PARTS = ("builders", "wheels", "layers", "resolutions", "state")


def _age(cache: Path, days: float) -> None:
    then = time.time() - days * 86400
    for p in cache.rglob("*"):
        os.utime(p, (then, then), follow_symlinks=False)


def _entries(cache: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    capsys.readouterr()
    assert main(["cache", "--cache-dir", str(cache), "--json"]) == 0
    return {p["name"]: p["entries"] for p in json.loads(capsys.readouterr().out)["parts"]}


def test_prune_keeps_what_the_last_build_used(
    tmp_path: Path, write_recipe: RecipeWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    # A cache of this test's own: the builder venvs other tests share must stay out of its reach.
    cache = tmp_path / "build-cache"
    build = ["build", str(write_recipe()), "--output", f"oci:{tmp_path / 'oci'}", "--cache-dir", str(cache)]
    assert main(build) == 0
    made = _entries(cache, capsys)
    assert all(made[part] >= 1 for part in PARTS), made
    assert made["work"] == 0  # a finished build leaves no scratch

    # Two months later, one build again (--refresh: it resolves anew and uses all it cached).
    _age(cache, 60)
    assert main([*build, "--refresh"]) == 0
    assert main(["cache", "prune", "--cache-dir", str(cache)]) == 0
    assert _entries(cache, capsys) == made  # each was used by that build: all kept

    # Two more months without a build: nothing of it was used since.
    _age(cache, 60)
    assert main(["cache", "prune", "--cache-dir", str(cache)]) == 0
    left = _entries(cache, capsys)
    assert all(left[part] == 0 for part in PARTS), left
    # The next build makes what it needs again.
    assert main([*build, "--refresh", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recipes"][0]["status"] == "built"
    assert _entries(cache, capsys) == made
