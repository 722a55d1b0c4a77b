"""Hot patches stay in the venv they were made in (#22): two venvs that share the host's store hold
their own copies of every file an operator may edit, so an edit in one (in place, as ``echo >>``
or ``cp`` does, or written to a temp file and renamed over, as most editors do) changes neither
the other venv nor the store, a later install gets the genuine file, and ``status`` and
``verify`` name the edited venv only.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from venvship.install import store
from venvship.venvformat.record import file_hash_field

from .conftest import Artifacts, Pull, Wheels

MODULE = "helper/__init__.py"
PATCH = "print('patched')\n"


def _site(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def _other(pull: Pull, name: str) -> Pull:
    """A second destination on the same host: the same cache (and so the same store)."""
    return Pull(tmp=pull.tmp, dest=pull.dest.parent / name, cache=pull.cache, facts=pull.facts)


def _stored(pull: Pull, artifacts: Artifacts, ref: str, rel: str) -> tuple[Path, str]:
    """Return the store's copy of venv file ``rel`` of distribution helper, and the hash it recorded."""
    entry = store.load(store.entry_path(pull.cache, artifacts.layer(ref, "helper").digest))
    assert entry is not None
    return entry.tree / rel, entry.files[rel][0]


def _patch_in_place(path: Path) -> None:
    with open(path, "a") as fh:  # what `echo ... >>` and `cp fixed.py path` do: the same inode
        fh.write(PATCH)


def _patch_by_rename(path: Path) -> None:
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(path.read_text() + PATCH)
    os.replace(tmp, path)  # what most editors do on save


@pytest.mark.parametrize("edit", [_patch_in_place, _patch_by_rename], ids=["in-place", "rename"])
def test_a_hot_patch_reaches_neither_another_venv_nor_the_store(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, edit: object
) -> None:
    ref = artifacts.write([wheels.demo1, wheels.helper])
    first, second = _other(pull, "service-a"), _other(pull, "service-b")
    first.install(ref)
    second.install(ref)
    a, b = _site(first.dest), _site(second.dest)
    genuine = (b / MODULE).read_text()
    site_rel = os.path.relpath(b, second.dest)
    stored, recorded = _stored(pull, artifacts, ref, f"{site_rel}/{MODULE}")

    assert callable(edit)
    edit(a / MODULE)
    # Python finds the edited module's bytecode stale and writes it anew, as the host's root would.
    out = subprocess.run(
        [str(first.dest / "bin" / "python"), "-c", "import helper"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.stdout == "patched\n"

    assert (b / MODULE).read_text() == genuine
    assert second.python("import helper", dest=second.dest) == ""
    assert file_hash_field(stored) == recorded
    pyc = next((b / "helper" / "__pycache__").glob("__init__.*.pyc"))
    stored_pyc, recorded_pyc = _stored(pull, artifacts, ref, str(pyc.relative_to(second.dest)))
    assert file_hash_field(pyc) == file_hash_field(stored_pyc) == recorded_pyc

    # status (every venv the cache knows) and verify name the edited venv, and only it.
    status = json.loads(pull("status", "--cache", str(pull.cache), "--json").stdout)
    drifted = {os.path.basename(v["dest"]): v["drift"]["files"] for v in status["venvs"]}
    assert drifted == {"service-a": 1, "service-b": 0}
    text = pull("status", "--cache", str(pull.cache)).stdout
    assert f"{first.dest}: drift: 1 of" in text and f"{second.dest}: no drift" in text
    bad = pull("verify", str(first.dest), "--cache", str(pull.cache), ok=False)
    assert bad.returncode == 1 and f"modified: {(a / MODULE).resolve()}" in bad.stdout
    assert " 0 drifted" in pull("verify", str(second.dest), "--cache", str(pull.cache)).stdout

    # A later install on this host gets the genuine file, and the store had nothing to repair.
    third = _other(pull, "service-c")
    proc = third("install", ref, "--json")
    assert "changed since they were unpacked" not in proc.stderr
    assert (_site(third.dest) / MODULE).read_text() == genuine


def test_status_and_verify_name_files_shared_by_hard_links(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    """A generation an older venv-pull made links its files from the store: status and verify say
    so (an edit there reaches every venv that links them), and --rebuild gives it its own files."""
    ref = artifacts.write([wheels.demo1, wheels.helper])
    pull.install(ref)
    site = _site(pull.dest)
    rel = f"{os.path.relpath(site, pull.dest)}/{MODULE}"
    stored, _ = _stored(pull, artifacts, ref, rel)
    clean = json.loads(pull("status", str(pull.dest), "--cache", str(pull.cache), "--json").stdout)
    assert clean["drift"]["shared"] == 0
    # What an older venv-pull left: the venv's module is the store's inode.
    (site / MODULE).unlink()
    os.link(stored, site / MODULE)

    status = json.loads(pull("status", str(pull.dest), "--cache", str(pull.cache), "--json").stdout)
    assert status["drift"] == {**clean["drift"], "shared": 1}
    line = pull("status", str(pull.dest), "--cache", str(pull.cache)).stdout.splitlines()[0]
    assert line == (
        f"{pull.dest}: no drift (files compared by size); 1 files shared with other venvs by hard links"
        " (an edit here changes them too): install --rebuild gives this venv its own"
    )
    verify = json.loads(pull("verify", str(pull.dest), "--cache", str(pull.cache), "--json").stdout)
    assert verify["drifted"] == [] and verify["shared"] == [str((site / MODULE).resolve())]

    pull.install(ref, "--rebuild")
    again = json.loads(pull("status", str(pull.dest), "--cache", str(pull.cache), "--json").stdout)
    assert again["drift"]["shared"] == 0
