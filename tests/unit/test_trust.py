"""The trust rules of host/trust.py, table-driven, as root: which folders venv-pull writes into or
reads code from, and which folders above them, it refuses (DESIGN §5)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from tests.needs import needs_root

from venvship.errors import TrustError
from venvship.host import trust

pytestmark = needs_root  # the trust rules apply only as root

NOBODY = pwd.getpwnam("nobody").pw_uid
# The managed folders venv-pull checks before it writes: each one goes through the same rule.
MANAGED = ["the blob cache", "the layer store", "the destination's folder", "the facts folder"]


def _tree(base: Path, *, parent_mode: int, folder_mode: int) -> Path:
    """Return ``base/parent/folder``, root-owned, with the given modes (chmod: umask-free)."""
    parent = base / "parent"
    folder = parent / "folder"
    folder.mkdir(parents=True)
    os.chmod(parent, parent_mode)
    os.chmod(folder, folder_mode)
    return folder


@pytest.fixture
def base(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    return tmp_path


REFUSED = [
    # (parent mode, folder mode, words the refusal must hold)
    (0o755, 0o775, "not writable by group or others"),  # group-writable folder
    (0o755, 0o757, "not writable by group or others"),  # others-writable folder
    (0o775, 0o755, "a folder above"),  # group-writable parent
    (0o777, 0o755, "a folder above"),  # world-writable parent that is not sticky
    (0o757, 0o755, "a folder above"),
]


@pytest.mark.parametrize("what", MANAGED)
@pytest.mark.parametrize(("parent_mode", "folder_mode", "reason"), REFUSED)
def test_a_folder_another_user_may_change_is_refused(
    base: Path, what: str, parent_mode: int, folder_mode: int, reason: str
) -> None:
    folder = _tree(base, parent_mode=parent_mode, folder_mode=folder_mode)
    with pytest.raises(TrustError) as exc:
        trust.check_tree(folder, what=what)
    message = str(exc.value)
    assert what in message and reason in message
    assert f"mode {parent_mode if 'above' in reason else folder_mode:04o}" in message
    with pytest.raises(TrustError):
        trust.check_existing([(folder, what)])


@pytest.mark.parametrize("what", MANAGED)
@pytest.mark.parametrize("parent_mode", [0o755, 0o1777, 0o1775])
def test_a_root_folder_under_root_or_sticky_folders_is_trusted(
    base: Path, what: str, parent_mode: int
) -> None:
    folder = _tree(base, parent_mode=parent_mode, folder_mode=0o755)
    trust.check_tree(folder, what=what)
    assert trust.trusted_dir(folder / "made", what=what).is_dir()


@pytest.mark.parametrize("parent_mode", [0o1777, 0o1775])
def test_an_interpreter_under_a_sticky_folder_is_refused(base: Path, parent_mode: int) -> None:
    # Python reads pyvenv.cfg in the folder above its own and looks for its stdlib in every folder
    # above: others may add both to a sticky folder, so an interpreter below one is refused.
    folder = _tree(base, parent_mode=parent_mode, folder_mode=0o755)
    python = folder / "python3"
    python.write_bytes(Path(os.path.realpath("/usr/bin/python3")).read_bytes())
    python.chmod(0o755)
    with pytest.raises(TrustError, match="a folder above the interpreter"):
        trust.check_tree(python, what="the interpreter", sticky=False)
    with pytest.raises(TrustError, match="a folder above the interpreter"):
        trust.host_python(str(python))


def test_a_folder_another_user_owns_is_refused(base: Path) -> None:
    folder = _tree(base, parent_mode=0o755, folder_mode=0o755)
    os.chown(folder, NOBODY, -1)
    with pytest.raises(TrustError, match=r"owner nobody.*must be owned by root"):
        trust.check_tree(folder, what="the blob cache")
    os.chown(folder.parent, NOBODY, -1)
    os.chown(folder, 0, -1)
    with pytest.raises(TrustError, match=r"owner nobody.*a folder above the blob cache"):
        trust.check_tree(folder, what="the blob cache")


@pytest.mark.parametrize("what", MANAGED)
def test_a_symlink_another_user_owns_is_refused(base: Path, what: str) -> None:
    real = _tree(base, parent_mode=0o755, folder_mode=0o755)
    link = base / "link"
    link.symlink_to(real)
    trust.check_tree(link, what=what)  # root's own link in a root folder: fine
    os.lchown(link, NOBODY, -1)
    with pytest.raises(TrustError, match=rf"owner nobody.*a symlink on the way to {what}"):
        trust.check_tree(link / "below", what=what)


def test_a_root_symlink_in_a_folder_others_may_change_is_refused(base: Path) -> None:
    real = _tree(base, parent_mode=0o755, folder_mode=0o755)
    loose = base / "loose"
    loose.mkdir()
    (loose / "link").symlink_to(real)
    os.chmod(loose, 0o777)
    with pytest.raises(TrustError, match="a symlink on the way to the layer store"):
        trust.check_tree(loose / "link", what="the layer store")
