"""Races against the store's checks (#23): a write that lands between a store file's check and
its copy or its record, an entry renewed by another install mid-link, a coarse ctime clock.

The writer is injected into the venv-pull process through a sitecustomize (a seam no real
process reaches at that moment: it stands for a hot patch written in place through a hard link
an older venv-pull made, or by hand, at an unlucky moment). Not covered, and not closed: a write
to bytecode in the microseconds between its hard link and the lstat that stamps it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from venvship.install import store

from .conftest import SRC, Artifacts, Pull
from .test_upgrade import HELPER_CHANGED, _gen, _site, _upgrade, kit  # noqa: F401  (fixture)

HOOK = """
import os
from venvship.install import layerinstall, store
TARGET = os.environ["ATTACK_TARGET"]
WHEN = os.environ["ATTACK_WHEN"]
OLD, NEW = os.environ["ATTACK_OLD"].encode(), os.environ["ATTACK_NEW"].encode()

DONE = []
def patch_in_place(path):
    if DONE and not os.environ.get("ATTACK_AGAIN"):
        return  # once: one hot patch landing at an unlucky moment
    DONE.append(1)
    data = open(path, "rb").read()
    if OLD in data:
        with open(path, "r+b") as fh:  # in place: same inode, as through an old hard link
            fh.write(data.replace(OLD, NEW))

real_check = store.check_open
def check_open(entry, rel, fd, st):
    hashed = real_check(entry, rel, fd, st)
    if WHEN == "after-check" and os.path.join(os.fspath(entry.tree), rel) == TARGET:
        patch_in_place(TARGET)
    return hashed
store.check_open = check_open

real_copy = layerinstall._Links._own_copy
def _own_copy(self, rel, source, target, *, mode):
    hashed = real_copy(self, rel, source, target, mode=mode)
    if WHEN == "after-copy" and source == TARGET:
        patch_in_place(TARGET)
    return hashed
layerinstall._Links._own_copy = _own_copy
"""


def _hooked(pull: Pull, tmp_path: Path, **env: str) -> dict[str, str]:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(textwrap.dedent(HOOK))
    return {"PYTHONPATH": f"{hook}{os.pathsep}{SRC}", **env}


@pytest.mark.parametrize("when", ["after-check", "after-copy"])
@pytest.mark.parametrize("vouched", [True, False])
def test_a_write_after_the_check_is_not_copied_nor_vouched(
    artifacts: Artifacts,
    pull: Pull,
    kit: dict[str, Path],  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
    when: str,
    vouched: bool,
) -> None:
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    venv = _gen(pull, pull.install(ref))
    tree = store.entry_path(pull.cache, artifacts.layer(ref, "helper").digest) / "tree"
    module = tree / _site(venv).relative_to(venv) / "helper" / "__init__.py"
    text = module.read_text()
    if not vouched:
        # Its ctime changes, not its bytes: an old generation's hard link to it pruned, a chmod.
        os.link(module, tmp_path / "old-link")
        os.unlink(tmp_path / "old-link")
    env = _hooked(
        pull, tmp_path, ATTACK_TARGET=str(module), ATTACK_WHEN=when, ATTACK_OLD="7.0", ATTACK_NEW="6.6"
    )
    proc = _upgrade(pull, artifacts, kit, env=env)
    second = _site(_gen(pull, json.loads(proc.stdout)))
    # (the store file was written in place; with the fix the entry is renewed)
    # Rule: a store file changed since it was unpacked is never copied into a new generation.
    copied_patch = (second / "helper" / "__init__.py").read_text() != text
    # ... and never later either: the next install must notice it.
    proc = pull("install", artifacts.write([kit["demo1"], kit["helper"]], version="3.0"), "--json")
    third = _site(_gen(pull, json.loads(proc.stdout)))
    vouched_patch = (third / "helper" / "__init__.py").read_text() != text
    assert not (copied_patch or vouched_patch), (
        f"patched bytes copied into the new generation: {copied_patch}; "
        f"patched store file vouched (copied unchecked into the next one too): {vouched_patch}"
    )


DISCARD_HOOK = """
import os
from venvship.install import layerinstall, store
NAME = os.environ["ATTACK_LAYER"]
DONE = []
real_run = layerinstall._Links.run
def run(self):
    if not DONE and self.layer.name == NAME:
        DONE.append(1)
        # Another venv-pull on this host found a change in this entry and renews it (under the
        # blob lock, which linking does not take): the entry is gone while this one links.
        store.discard(self.entry.root)
    return real_run(self)
layerinstall._Links.run = run
"""


def test_an_entry_renewed_by_another_install_mid_link_is_linked_again(
    artifacts: Artifacts,
    pull: Pull,
    kit: dict[str, Path],  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    pull.install(ref)
    hook = tmp_path / "hook2"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(DISCARD_HOOK)
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{SRC}", "ATTACK_LAYER": "helper"}
    proc = _upgrade(pull, artifacts, kit, env=env, ok=False)
    assert proc.returncode == 0, proc.stderr


COARSE_HOOK = """
import os, time
from venvship.install import store
DONE, PATH = [], []
real = store.after_linking
def after_linking(entry, linked, *args):
    pycs = [rel for rel in linked if rel.endswith(".pyc") and "/helper/__pycache__/extra." in rel]
    if pycs and not DONE:
        DONE.append(1)
        PATH.append(os.path.join(entry.tree, pycs[0]))
        path = PATH[0]
        time.sleep(1.05 - time.time() % 1)  # just after a second starts
        os.chmod(path, os.lstat(path).st_mode & 0o7777)  # its ctime: this second
        linked[pycs[0]] = store.stamp(os.lstat(path))  # as if linked just now
    real(entry, linked, *args)
    if DONE == [1] and pycs:
        DONE.append(2)
        path = PATH[0]
        with open(path, "r+b") as fh:  # a write in place, the same second as the record
            fh.seek(-1, os.SEEK_END)
            last = fh.read(1)
            fh.seek(-1, os.SEEK_END)
            fh.write(bytes([last[0] ^ 0xFF]))
        open(os.environ["ATTACK_OUT"], "w").write(path)
store.after_linking = after_linking
"""


def test_a_write_the_same_second_as_the_record_is_found_on_a_coarse_clock(
    artifacts: Artifacts,
    pull: Pull,
    kit: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The store on ext4 with 128-byte inodes (mke2fs -I 128; once the default below 512 MB):
    ctimes in whole seconds. On kernels before 6.13 every file system's ctime is a clock tick."""
    import dataclasses
    import tempfile

    small = tmp_path / "coarse"
    small.mkdir()
    image = tmp_path / "coarse.img"
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        pytest.skip("needs root and mkfs.ext4 to mount a file system with whole-second ctimes")
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True, timeout=30)
    subprocess.run(
        ["mkfs.ext4", "-q", "-I", "128", "-F", str(image)], check=True, timeout=60, capture_output=True
    )
    subprocess.run(["mount", "-o", "loop", str(image), str(small)], check=True, timeout=60)
    request.addfinalizer(lambda: subprocess.run(["umount", str(small)], check=True, timeout=60))
    base = Path(tempfile.mkdtemp(dir=small))
    base.chmod(0o755)
    pull = dataclasses.replace(pull, cache=base / "cache", dest=base / "venvs" / "demo")
    hook = tmp_path / "hook3"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(COARSE_HOOK)
    out = tmp_path / "patched"
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{SRC}", "ATTACK_OUT": str(out)}
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    pull("install", ref, "--json", env=env)
    patched = Path(out.read_text())
    bad = patched.read_bytes()
    proc = _upgrade(pull, artifacts, kit)
    new = _gen(pull, json.loads(proc.stdout))
    linked = new / patched.relative_to(patched.parents[len(patched.relative_to(base / "cache").parts) - 4])
    assert "stored files changed" in proc.stderr and linked.read_bytes() != bad, (
        f"bytecode written in place was vouched and linked into {linked}"
    )


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "chardev", "socket"])
def test_a_stored_file_replaced_by_another_kind_is_found_not_followed(
    artifacts: Artifacts,
    pull: Pull,
    kit: dict[str, Path],  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
    kind: str,
) -> None:
    import socket

    ref = artifacts.write([kit["demo1"], kit["helper"]])
    venv = _gen(pull, pull.install(ref))
    tree = store.entry_path(pull.cache, artifacts.layer(ref, "helper").digest) / "tree"
    module = tree / _site(venv).relative_to(venv) / "helper" / "extra.py"
    module.unlink()
    if kind == "symlink":
        (tmp_path / "elsewhere.py").write_text("EXTRA = 'from elsewhere'\n")
        module.symlink_to(tmp_path / "elsewhere.py")
    elif kind == "fifo":
        os.mkfifo(module)  # opened for reading, it would block until a writer came
    elif kind == "directory":
        module.mkdir()
    elif kind == "chardev":
        os.mknod(module, 0o644 | 0o020000, os.makedev(1, 3))  # /dev/null's
    else:
        sock = socket.socket(socket.AF_UNIX)
        cwd = os.getcwd()
        os.chdir(module.parent)
        try:
            sock.bind(module.name)
            sock.close()
        finally:
            os.chdir(cwd)
    proc = _upgrade(pull, artifacts, kit)
    assert HELPER_CHANGED in proc.stderr
    new_site = _site(_gen(pull, json.loads(proc.stdout)))
    assert (new_site / "helper" / "extra.py").read_text() == "EXTRA = 1\n"
    assert not (new_site / "helper" / "extra.py").is_symlink()
