"""Attacks on ``verify`` and ``status``: an artifact that ships a decoy site-packages to blind
them, a user who swaps a folder of the venv for a symlink out of it to have root hash a file."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from venvship.oci.layout import Layout

from .conftest import Artifacts, Pull, Wheels
from .test_attacks_more import NOBODY, _chown_tree
from .test_layers import _member, _swap_layer, _tar


def _site(pull: Pull, generation: str) -> Path:
    venv = pull.dest.parent / ".demo.venvship" / generation
    [site] = [p for p in venv.glob("lib/python3*/site-packages") if "python3.1/" not in f"{p}/"]
    return site


def _verify(pull: Pull) -> dict[str, object]:
    proc = pull("verify", str(pull.dest), "--json", ok=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    report: dict[str, object] = json.loads(proc.stdout)
    return report


def test_a_decoy_site_packages_does_not_blind_verify(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    good = artifacts.write([wheels.demo1])
    layer = artifacts.layer(good, "demo")
    # demo's own layer, plus a decoy lib/python3.1/site-packages that sorts before the real one.
    with gzip.open(Layout(artifacts.root).blob_path(layer.digest)) as gz:
        data = gz.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]
    decoy = "lib/python3.1/site-packages"
    members += [_member(f"{decoy}/decoy-1.0.dist-info/RECORD", b"decoy-1.0.dist-info/RECORD,,\n")]
    ref = _swap_layer(artifacts, good, "demo", _tar(members))
    first = pull.install(ref)
    assert not [d for d in _verify(pull)["drifted"] if str(d).startswith("modified")]  # type: ignore[attr-defined]
    # A real file replaced (a new inode: the store's copy stays as it was).
    target = _site(pull, str(first["generation"])) / "demo" / "__init__.py"
    target.unlink()
    target.write_text("VERSION = 'patched'\n")
    report = _verify(pull)
    assert f"modified: {target}" in report["drifted"], report  # type: ignore[operator]
    status = json.loads(pull("status", str(pull.dest), "--json").stdout)
    assert '"files": 1' in json.dumps(status), status  # status reads the same site-packages


def test_verify_does_not_follow_a_folder_swapped_for_a_symlink_out(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    first = pull.install(artifacts.write([wheels.demo1]))
    site = _site(pull, str(first["generation"]))
    # A root-only file outside the venv; the user guesses its content.
    secret = tmp_path / "root-only"
    secret.mkdir(mode=0o700)
    (secret / "__init__.py").write_bytes(b"password = 'hunter2'\n")
    guess = base64.urlsafe_b64encode(hashlib.sha256(b"password = 'hunter2'\n").digest()).rstrip(b"=")
    # The user owns the venv (a destination they control): demo/ becomes a symlink to the secret,
    # and demo's RECORD names the guess (a new file: the old one is a link into the store).
    generation = site.parents[2]
    _chown_tree(generation, NOBODY)
    os.rename(site / "demo", site / "demo.old")
    (site / "demo").symlink_to(secret)
    record = site / "demo-1.0.dist-info" / "RECORD"
    rows = [r for r in record.read_text().splitlines() if not r.startswith("demo/__init__.py,")]
    record.unlink()
    record.write_text("\n".join([*rows, f"demo/__init__.py,sha256={guess.decode()},21"]) + "\n")
    _chown_tree(generation, NOBODY)
    report = _verify(pull)
    drifted = [str(d) for d in report["drifted"]]  # type: ignore[attr-defined]
    # Never "matches": the path through the symlink is drift, whatever the secret holds.
    assert f"modified: {site / 'demo' / '__init__.py'} (a symlink or not a plain path on its way)" in drifted
    assert not any("hunter2" in d for d in drifted)
