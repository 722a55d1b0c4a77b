"""Upgrades: every generation takes its distributions from the host's store of unpacked layers
(its own copies, bytecode linked), so an upgrade unpacks only what changed.

The live generation must come out of an upgrade byte for byte and inode for inode as it was,
the new one must hold what a fresh install (``--rebuild``) and an install from the wheels with
pip or uv hold, a hot patch of the live venv never travels on, and re-installing an artifact that
still has a generation switches back to it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from tests.needs import require
from venvship.artifact.documents import Fact
from venvship.install import store

from .conftest import Artifacts, Pull, make_wheel

STATE_FILES = {"venvship-state.json", ".venvship-facts-pending"}


def _wheel(
    out: Path, name: str, version: str, *, scripts: dict[str, str] | None = None, **files: str
) -> Path:
    """A wheel of package ``name`` with extra ``files`` (path with ``__`` for ``/``) and console scripts."""
    extra = {path.replace("__", "/") + ".py": text for path, text in files.items()}
    if scripts:
        lines = "".join(f"{script} = {target}\n" for script, target in scripts.items())
        extra[f"{name}-{version}.dist-info/entry_points.txt"] = "[console_scripts]\n" + lines
    return make_wheel(out, name, version, extra=extra)


def _gen(pull: Pull, result: dict[str, Any]) -> Path:
    return pull.dest.parent / ".demo.venvship" / str(result["generation"])


def _site(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


# What the upgrade below says when it finds one of helper's stored files changed.
HELPER_CHANGED = "helper-7.0.venv.tar.gz: 1 stored files changed since they were unpacked"


def _upgrade(
    pull: Pull, artifacts: Artifacts, kit: dict[str, Path], *args: str, **kw: Any
) -> CompletedProcess[str]:
    """Install demo 2.0 beside the same helper 7.0 (its store entry checked again, not unpacked)."""
    return pull(
        "install", artifacts.write([kit["demo2-plain"], kit["helper"]], version="2.0"), "--json", *args, **kw
    )


def _snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Return every entry under ``root``: kind, content hash or link target, inode, mode, mtime.

    Neither link counts nor ctimes: a hard link made to a file changes both, not the file.
    """
    out: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what: object = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir", sorted(os.listdir(path)))
            else:
                what = ("file", hashlib.sha256(Path(path).read_bytes()).hexdigest())
            out[os.path.relpath(path, root)] = (what, st.st_ino, st.st_mode, st.st_mtime_ns)
    return out


def _run(script: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([script], capture_output=True, text=True, check=True, env=env, timeout=60).stdout


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("upgrade-wheels")
    return {
        # Kept across the upgrade: its module shared_mod.py and its script shared-cli are both
        # provided again, differently, by the changed package.
        "helper": _wheel(
            out,
            "helper",
            "7.0",
            scripts={"helper-cli": "helper:main", "shared-cli": "helper:main"},
            helper__extra="EXTRA = 1\n",
            shared_mod="WHO = 'helper'\n",
        ),
        "demo1": _wheel(out, "demo", "1.0", scripts={"demo-cli": "demo:main"}, demo__old="OLD = 1\n"),
        "demo2": _wheel(
            out,
            "demo",
            "2.0",
            scripts={"demo-cli": "demo:main", "shared-cli": "demo:main"},
            shared_mod="WHO = 'demo, a longer text'\n",
        ),
        # The same file name as demo2's: another folder.
        "demo2-plain": _wheel(
            out / "plain", "demo", "2.0", scripts={"demo-cli": "demo:main"}, demo__new="NEW = 1\n"
        ),
        "gone": make_wheel(out, "gone", "1.0"),
        "newdep": make_wheel(out, "newdep", "1.0"),
    }


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_upgrade_leaves_the_live_generation_untouched(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path], tool: str
) -> None:
    first = pull.install(artifacts.write([kit["demo1"], kit["helper"], kit["gone"]], install_tool=tool))
    old = _gen(pull, first)
    before = _snapshot(old)
    ref2 = artifacts.write([kit["demo2"], kit["helper"], kit["newdep"]], version="2.0", install_tool=tool)
    proc = pull("install", ref2, "--json")
    second = json.loads(proc.stdout)
    new = _gen(pull, second)

    # The previous generation: every file, folder and link as it was, in content, inode and mtime.
    assert _snapshot(old) == before
    old_site, new_site = _site(old), _site(new)
    # The kept distribution comes from the host's store, as the live one's did: its bytecode the
    # same inodes, its modules each generation's own (an edit in one never reaches the other).
    module, pyc = "helper/__init__.py", next((old_site / "helper" / "__pycache__").glob("*.pyc"))
    assert os.stat(new_site / pyc.relative_to(old_site)).st_ino == os.stat(pyc).st_ino
    assert os.stat(new_site / module).st_ino != os.stat(old_site / module).st_ino
    assert (new_site / module).read_bytes() == (old_site / module).read_bytes()
    # demo 2.0 and helper both write shared_mod.py and shared-cli: the later in the lock wins.
    assert (new_site / "shared_mod.py").read_text() == "WHO = 'helper'\n"
    assert _run(new / "bin" / "shared-cli").strip() == "7.0"
    assert _run(pull.dest / "bin" / "demo-cli").strip() == "2.0"
    # Scripts name their own generation (written anew, not linked).
    assert (new / "bin" / "helper-cli").read_text().startswith(f"#!{new}/bin/python")
    assert (old / "bin" / "helper-cli").read_text().startswith(f"#!{old}/bin/python")
    assert _run(new / "bin" / "helper-cli").strip() == "7.0"
    # Gone and changed packages left their files behind in the old generation only.
    assert not (new_site / "demo" / "old.py").exists() and (old_site / "demo" / "old.py").exists()
    assert not list(new_site.glob("gone*")) and not list(new_site.glob("demo-1.0.dist-info"))
    assert (
        pull.python("import demo, helper, newdep, shared_mod; print(demo.VERSION, newdep.VERSION)")
        == "2.0 1.0"
    )
    # Bytecode: every pyc came with the layers, none was compiled here.
    pycs = len(list(new_site.rglob("__pycache__/*.pyc")))
    assert second["bytecode"] == {"reused": pycs, "compiled": 0} and pycs >= 5
    assert not [p for p in new.parent.iterdir() if p.name.endswith(".partial")]


def _tree(venv: Path, *, bytecode: bool = False) -> dict[str, object]:
    """Return the venv's files for comparison: the generation's own path blanked out, pycs left
    out (``bytecode``: by name only), bin/ scripts' RECORD hashes left out (scripts name the path)."""
    out: dict[str, object] = {}
    mark = os.fsencode(venv)
    for folder, _dirs, files in os.walk(venv):
        for name in files:
            path = Path(folder, name)
            rel = str(path.relative_to(venv))
            # uv's own records: its venv lock, and when it installed (a layer's is the layer's time).
            if name in STATE_FILES or rel == ".lock" or name == "uv_cache.json":
                continue
            if name.endswith(".pyc"):
                if bytecode:
                    out[rel] = "pyc"
                continue
            if path.is_symlink():
                out[rel] = os.readlink(path)
                continue
            data = path.read_bytes().replace(mark, b"<GEN>")
            if name == "RECORD":
                rows = [
                    r for r in csv.reader(io.StringIO(data.decode())) if not r[0].endswith("uv_cache.json")
                ]
                data = repr(sorted(r[:1] if r[0].startswith("../../../bin/") else r for r in rows)).encode()
            out[rel] = (data, oct(path.stat().st_mode))
    return out


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_an_upgrade_equals_a_fresh_install_and_one_from_wheels(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path], tool: str
) -> None:
    pull.install(artifacts.write([kit["demo1"], kit["helper"], kit["gone"]], install_tool=tool))
    ref2 = artifacts.write(
        [kit["demo2-plain"], kit["helper"], kit["newdep"]], version="2.0", install_tool=tool
    )
    upgraded = _gen(pull, pull.install(ref2))
    assert "0 drifted" in pull("verify", str(pull.dest), "--cache", str(pull.cache)).stdout

    rebuilt = _gen(pull, pull.install(ref2, "--rebuild"))
    assert rebuilt != upgraded
    assert _tree(upgraded, bytecode=True) == _tree(rebuilt, bytecode=True)

    # The same artifact installed from its wheels by its pip or uv: the same files (bytecode
    # aside), the same RECORDs, the same `pip list`; its scripts run and its modules import.
    wheels = _gen(pull, pull.install(ref2, "--rebuild", "--from-wheels", "--keep", "3"))
    assert _tree(wheels) == _tree(upgraded)
    listing = [
        subprocess.run(
            [venv / "bin" / "python", "-c", _LIST],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for venv in (wheels, upgraded)
    ]
    assert listing[0] == listing[1] and "helper 7.0" in listing[0]
    assert _run(upgraded / "bin" / "demo-cli").strip() == "2.0"


_LIST = "import importlib.metadata as m; print(sorted(f'{d.name} {d.version}' for d in m.distributions()))"


def test_a_hot_patch_of_the_live_venv_never_travels_on(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    first = pull.install(artifacts.write([kit["demo1"], kit["helper"]]))
    old_site = _site(_gen(pull, first))
    # Hot fixes and accidents in the live generation: an edited module (its own copy, the store's
    # untouched), a deleted one, a stray file.
    (old_site / "helper" / "__init__.py").write_text("VERSION = 'patched'\n")
    (old_site / "helper" / "extra.py").unlink()
    (old_site / "stray.py").write_text("STRAY = 1\n")
    proc = _upgrade(pull, artifacts, kit)
    new_site = _site(_gen(pull, json.loads(proc.stdout)))
    assert "stored files changed since they were unpacked" not in proc.stderr
    assert "VERSION = '7.0'" in (new_site / "helper" / "__init__.py").read_text()
    assert (new_site / "helper" / "extra.py").is_file() and not (new_site / "stray.py").exists()
    assert (old_site / "helper" / "__init__.py").read_text() == "VERSION = 'patched'\n"
    assert "0 drifted" in pull("verify", str(pull.dest), "--cache", str(pull.cache)).stdout


def test_a_failing_upgrade_leaves_the_live_generation_as_it_was(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path], tmp_path: Path
) -> None:
    first = pull.install(artifacts.write([kit["demo1"], kit["helper"]]))
    old = _gen(pull, first)
    before = _snapshot(old)
    broken = make_wheel(tmp_path / "w", "demo", "2.0", body="raise ImportError('broken on purpose')")
    proc = pull("install", artifacts.write([broken, kit["helper"]], version="2.0"), ok=False)
    assert proc.returncode == 1 and "broken on purpose" in proc.stderr
    assert _snapshot(old) == before and os.readlink(pull.dest).endswith(first["generation"])
    assert sorted(p.name for p in old.parent.iterdir() if not p.name.startswith(".")) == [old.name]


def test_reinstalling_an_artifact_switches_back_to_its_generation(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    facts = [Fact(file="demo", section="demo", option="venv_tag", value="x")]
    first = pull.install(artifacts.write([kit["demo1"], kit["helper"]], facts=facts))
    ref2 = artifacts.write([kit["demo2-plain"], kit["helper"]], version="2.0", facts=facts)
    second = pull.install(ref2)
    pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts))
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"
    venv = _gen(pull, second)
    before = {k: v for k, v in _snapshot(venv).items() if k not in STATE_FILES}

    again = pull.install(ref2)
    assert again["changed"] is True and again["generation"] == second["generation"]
    assert again["digest"] == second["digest"] and again["previous_digest"] == first["digest"]
    assert "bytecode" not in again  # nothing was built
    assert {k: v for k, v in _snapshot(venv).items() if k not in STATE_FILES} == before
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"
    fact = (pull.facts / "demo.fact").read_text()
    assert f"venvship_digest = {second['digest']}" in fact
    assert f"venvship_previous_digest = {first['digest']}" in fact
    state = json.loads((venv / "venvship-state.json").read_text())
    assert (
        state["previous_generation"] == first["generation"]
        and not (venv / ".venvship-facts-pending").exists()
    )
    assert pull.install(ref2)["changed"] is False
    # --rebuild still makes a new generation.
    rebuilt = pull.install(ref2, "--rebuild")
    assert rebuilt["changed"] is True and rebuilt["generation"] not in (
        first["generation"],
        second["generation"],
    )


def test_a_same_size_change_to_a_stored_file_is_found(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    first = pull.install(ref)
    venv = _gen(pull, first)
    # The store's own file, written in place: by hand, or through a generation an older venv-pull
    # made of hard links.
    tree = store.entry_path(pull.cache, artifacts.layer(ref, "helper").digest) / "tree"
    module = tree / _site(venv).relative_to(venv) / "helper" / "__init__.py"
    text = module.read_text()
    # Same length, other bytes: only the inode's ctime tells the store the file changed.
    patched = text.replace("7.0", "6.6")
    assert patched != text and len(patched) == len(text)
    module.write_text(patched)
    proc = _upgrade(pull, artifacts, kit)
    new_site = _site(_gen(pull, json.loads(proc.stdout)))
    assert HELPER_CHANGED in proc.stderr
    assert (new_site / "helper" / "__init__.py").read_text() == text


def test_a_change_to_stored_bytecode_is_found_after_it_was_linked(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    first = pull.install(ref)
    venv = _gen(pull, first)
    # Bytecode is the one kind of store file a generation shares (a hard link): written in place
    # through the generation's link, after linking recorded it as checked.
    linked, stored = _stored_pyc(pull, artifacts, ref, venv)
    original = stored.read_bytes()
    with open(linked, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([original[-1] ^ 0xFF]))
    assert stored.read_bytes() != original and len(stored.read_bytes()) == len(original)
    proc = _upgrade(pull, artifacts, kit)
    assert HELPER_CHANGED in proc.stderr
    new = _gen(pull, json.loads(proc.stdout))
    assert (new / linked.relative_to(venv)).read_bytes() == original


def _stored_pyc(pull: Pull, artifacts: Artifacts, ref: str, venv: Path) -> tuple[Path, Path]:
    """Return helper's linked bytecode file in generation ``venv`` and its store file (one inode)."""
    linked = next((_site(venv) / "helper" / "__pycache__").glob("extra.*.pyc"))
    stored = store.entry_path(pull.cache, artifacts.layer(ref, "helper").digest) / "tree"
    stored = stored / linked.relative_to(venv)
    assert os.path.samefile(linked, stored)
    return linked, stored


def test_stored_bytecode_a_pruned_generation_linked_is_not_hashed_again(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    # Pruning a generation unlinks its bytecode from the store: the ctime and the link count
    # change, not the bytes. Hashing every such file again made the next upgrade pay for the
    # last one's pruning (#23).
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    first = _gen(pull, pull.install(ref))
    _, stored = _stored_pyc(pull, artifacts, ref, first)
    pull.install(artifacts.write([kit["demo2-plain"], kit["helper"]], version="2.0"))
    links = os.stat(stored).st_nlink
    pull("prune", "--cache", str(pull.cache), "--keep", "1")
    assert not first.exists() and os.stat(stored).st_nlink == links - 1
    proc = pull("install", artifacts.write([kit["demo1"], kit["helper"]], version="3.0"), "--json", "-v")
    assert json.loads(proc.stdout)["changed"] is True
    assert "stored files hashed again" not in proc.stderr, proc.stderr


def test_stored_bytecode_whose_mode_changed_is_not_linked_again(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    venv = _gen(pull, pull.install(ref))
    linked, _ = _stored_pyc(pull, artifacts, ref, venv)
    # Writable by all through the generation's link: the store's file, which every generation
    # made after would share with its mode, bytes unchanged.
    linked.chmod(0o666)
    proc = _upgrade(pull, artifacts, kit)
    assert HELPER_CHANGED in proc.stderr
    new = _gen(pull, json.loads(proc.stdout)) / linked.relative_to(venv)
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o644 and not os.path.samefile(new, linked)


def test_a_write_to_stored_bytecode_that_sets_its_mtime_back_is_found(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    venv = _gen(pull, pull.install(ref))
    linked, stored = _stored_pyc(pull, artifacts, ref, venv)
    before = os.stat(stored)
    original = stored.read_bytes()
    # In place and its times set back, as ``cp -p`` over it would: only the ctime tells.
    with open(linked, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([original[-1] ^ 0xFF]))
    os.utime(linked, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(stored)
    assert (after.st_mtime_ns, after.st_nlink, after.st_size) == (
        before.st_mtime_ns,
        before.st_nlink,
        before.st_size,
    )
    proc = _upgrade(pull, artifacts, kit)
    assert HELPER_CHANGED in proc.stderr
    new = _gen(pull, json.loads(proc.stdout))
    assert (new / linked.relative_to(venv)).read_bytes() == original


def _default_acl(folder: Path) -> None:
    """Give ``folder`` a default ACL (user rwx, group r-x, others nothing), as ``setfacl -d`` would."""
    entries = [(0x01, 7), (0x04, 5), (0x20, 0)]  # ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER
    value = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, 0xFFFFFFFF) for tag, perm in entries
    )
    try:
        os.setxattr(folder, "system.posix_acl_default", value)
    except OSError as exc:
        require(
            False,
            f"POSIX ACLs on {folder}'s file system ({exc.strerror})",
            fix="run the tests on ext4 or tmpfs",
        )


def test_a_cache_whose_folder_has_a_default_acl_keeps_its_store(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    # A default ACL, not the umask, decides the mode of what is made under the cache: unpacking
    # sets each file's recorded mode itself, or every later install would take the store for
    # changed and unpack it again, and again.
    pull.cache.mkdir(mode=0o700, parents=True)
    _default_acl(pull.cache)
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    venv = _gen(pull, pull.install(ref))
    _, stored = _stored_pyc(pull, artifacts, ref, venv)
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o644
    proc = _upgrade(pull, artifacts, kit)
    assert "changed since they were unpacked" not in proc.stderr, proc.stderr


def test_a_stamp_of_another_shape_vouches_for_nothing(
    artifacts: Artifacts, pull: Pull, kit: dict[str, Path]
) -> None:
    ref = artifacts.write([kit["demo1"], kit["helper"]])
    venv = _gen(pull, pull.install(ref))
    linked, stored = _stored_pyc(pull, artifacts, ref, venv)
    entry = store.entry_path(pull.cache, artifacts.layer(ref, "helper").digest)
    # seen.json is a hint that a hand (or another version) may have written: not state to trust.
    seen = json.loads((entry / store.SEEN).read_text())
    seen[str(linked.relative_to(venv))] = 5
    (entry / store.SEEN).write_text(json.dumps(seen))
    proc = _upgrade(pull, artifacts, kit, "-v")
    assert "helper-7.0.venv.tar.gz: 1 stored files hashed again" in proc.stderr
    assert os.path.samefile(_gen(pull, json.loads(proc.stdout)) / linked.relative_to(venv), stored)
