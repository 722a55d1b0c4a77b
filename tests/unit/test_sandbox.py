"""The build user and the checks on what the build code could have changed (#20)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.needs import needs_root

from venvship.builder.sandbox import build_user, unsound
from venvship.errors import BuildError


@needs_root
@pytest.mark.parametrize("value", ["root", "0", "no-such-user-here"])
def test_a_build_user_that_is_root_or_unknown_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("VENVSHIP_BUILD_USER", value)
    with pytest.raises(BuildError) as caught:
        build_user()
    assert str(caught.value).startswith(f"VENVSHIP_BUILD_USER={value!r}: ")


@needs_root
def test_the_build_user_is_nobody_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VENVSHIP_BUILD_USER", raising=False)
    assert build_user() == (65534, 65534)
    monkeypatch.setenv("VENVSHIP_BUILD_USER", "4242")  # a uid without a passwd entry: its own group
    assert build_user() == (4242, 4242)


def test_a_builder_venv_another_user_could_change_is_unsound(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "lib").mkdir(parents=True)
    (venv / "lib" / "site.py").write_text("")
    (venv / "bin").symlink_to("lib")
    for path in (venv, venv / "lib"):
        path.chmod(0o755)
    (venv / "lib" / "site.py").chmod(0o644)
    assert unsound(venv) is None
    (venv / "lib").chmod(0o775)
    assert unsound(venv) == f"{venv / 'lib'} (owner uid {os.geteuid()}, mode 0775)"
    (venv / "lib").chmod(0o755)
    if os.geteuid() == 0:
        os.lchown(venv / "lib" / "site.py", 65534, 65534)
        assert unsound(venv) == f"{venv / 'lib' / 'site.py'} (owner uid 65534, mode 0644)"
