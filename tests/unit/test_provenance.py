"""Provenance names the git commit a recipe was built from, never the login in a remote's URL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from venvship.builder.provenance import git_revision


def _git(folder: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    proc = subprocess.run(
        ["git", "-C", str(folder), *args], check=True, capture_output=True, text=True, env=env
    )
    return proc.stdout.strip()


def test_git_revision_of_a_checkout(tmp_path: Path) -> None:
    assert git_revision(tmp_path) is None  # not a checkout: no source entry
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "demo.toml").write_text("[venv]\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "remote", "add", "origin", "https://ci:s3cret@git.example.com/org/venvs.git")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "recipes")
    commit = _git(tmp_path, "rev-parse", "HEAD")
    entry = git_revision(tmp_path / "recipes")
    assert entry == {
        "uri": f"git+https://git.example.com/org/venvs.git@{commit}",
        "digest": {"gitCommit": commit},
    }
    (tmp_path / "recipes" / "demo.toml").write_text("[venv]\nname = 'x'\n")
    assert git_revision(tmp_path / "recipes") == {**entry, "annotations": {"uncommitted_changes": True}}


def test_no_git_installed_means_no_source_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _git(tmp_path, "init", "-q")  # a checkout, but this build host has no git on PATH
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_revision(tmp_path) is None
