"""A trust policy on the target: signed artifacts install, everything else is refused in one line
before anything is pulled, with the host unchanged; keys made and checked by the real openssl."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from tests.needs import needs, require_python
from tests.signing import KeyPair, make_key, write_policy
from venvship.artifact.documents import Index
from venvship.artifact.sigformat import SIGNATURE_ANNOTATION
from venvship.cli import venvship_main
from venvship.install.zipapp import build_zipapp
from venvship.oci.layout import Layout
from venvship.oci.referrers import list_bytes, parse_list, referrer_entry, referrers_tag

from .conftest import Artifacts, Pull, Wheels, tree_snapshot
from .test_faults import _kill, _start_paused


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPair]:
    return {name: make_key(tmp_path / "keys", name) for name in ("release", "next", "stranger")}


def _sign(ref: str, key: KeyPair, capsys: pytest.CaptureFixture[str]) -> str:
    assert venvship_main.main(["sign", ref, "--key", str(key.private)]) == 0
    return capsys.readouterr().out


def _refused(pull: Pull, ref: str, policy: Path) -> str:
    before = tree_snapshot(pull.dest.parent, pull.cache, pull.facts)
    proc = pull("install", ref, "--policy", str(policy), ok=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert tree_snapshot(pull.dest.parent, pull.cache, pull.facts) == before  # nothing on the host changed
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("venv-pull: error:")]
    return line


def _digest(artifacts: Artifacts, tag: str) -> str:
    return Layout(artifacts.root).resolve(f"demo:{tag}").digest


def test_signed_installs_unsigned_and_moved_tags_are_refused(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    line = _refused(pull, ref, policy)
    assert f"{ref}@{_digest(artifacts, '1.0')}: refused by {policy}" in line
    assert f"expected a signature by {keys['release'].public}; found no signature" in line

    out = _sign(ref, keys["release"], capsys)
    assert "signed 2 digest(s)" in out  # the index and its one platform
    assert "signed 0 digest(s)" in _sign(ref, keys["release"], capsys)  # once is enough
    by_digest = f"oci:{artifacts.root}:demo@{_digest(artifacts, '1.0')}"  # as `venvship index` signs
    assert _sign(by_digest, keys["release"], capsys).startswith(f"{by_digest}: signed 0 digest(s)")
    first = pull.install(ref, "--policy", str(policy))
    assert first["changed"] is True
    assert pull.install(ref, "--policy", str(policy))["changed"] is False

    # The tag moves to an unsigned artifact: refused, the signed venv stays live and untouched.
    ref2 = artifacts.write([wheels.demo2], version="1.0")
    assert ref2 == ref and _digest(artifacts, "1.0") != first["digest"]
    line = _refused(pull, ref, policy)
    assert "found no signature" in line
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"


def test_wrong_signatures_are_refused(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = write_policy(pull.tmp / "policy.toml", {f"oci:{artifacts.root}:demo": [keys["release"].public]})
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["stranger"], capsys)
    assert "which the policy does not trust" in _refused(pull, ref, policy)

    layout = Layout(artifacts.root)
    index = layout.resolve("demo:1.0")
    [platform] = Index.from_bytes(layout.read_blob(index.digest)).manifests
    _sign(ref, keys["release"], capsys)
    # Tamper with the trusted signature of the index: one byte of the signature changed.
    _rewrite_signatures(layout, index.digest, change=lambda sig: sig[:-1] + bytes([sig[-1] ^ 1]))
    assert "that does not verify" in _refused(pull, ref, policy)

    # A trusted signature over another digest (the platform's), listed for the index.
    _rewrite_signatures(layout, index.digest, from_digest=platform.digest)
    line = _refused(pull, ref, policy)
    assert f"a signature over another digest ({platform.digest})" in line


def _rewrite_signatures(
    layout: Layout, subject: str, *, change: Callable[[bytes], bytes] = lambda s: s, from_digest: str = ""
) -> None:
    """List for ``subject`` the signatures of ``from_digest`` (default: its own), each signature
    passed through ``change``: what anyone who can write to the store could do."""
    entries = []
    source = layout.resolve(f"demo:{referrers_tag(from_digest or subject)}")
    for entry in parse_list(layout.read_blob(source.digest), where="referrers"):
        doc = json.loads(layout.read_blob(entry.digest))
        doc["subject"]["digest"] = subject
        for layer in doc["layers"]:
            ann = layer["annotations"]
            sig = change(base64.b64decode(ann[SIGNATURE_ANNOTATION]))
            ann[SIGNATURE_ANNOTATION] = base64.b64encode(sig).decode()
        raw = json.dumps(doc).encode()
        layout.put_bytes(raw)
        entries.append(referrer_entry(raw, media_type=entry.media_type))
    layout.update_ref(f"demo:{referrers_tag(subject)}", lambda _: list_bytes(tuple(entries)))


def test_policy_per_scope_key_rotation_and_json_form(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    signed_scope = f"oci:{artifacts.root}:demo"
    rotating = [keys["release"].public, keys["next"].public]
    policy = write_policy(pull.tmp / "policy.json", {signed_scope: rotating})
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["release"], capsys)
    assert pull.install(ref, "--policy", str(policy))["changed"] is True

    # Another repository of the same layout is not in the scope: no signature needed there.
    other = artifacts.write([wheels.helper], name="helper", install_path=str(pull.tmp / "venvs" / "helper"))
    assert pull.install(other, "--policy", str(policy), "--dest", str(pull.tmp / "venvs" / "helper"))[
        "changed"
    ]

    # Rotation: the next release is signed with the new key only; both keys are trusted.
    ref2 = artifacts.write([wheels.demo2], version="2.0")
    _sign(ref2, keys["next"], capsys)
    assert pull.install(ref2, "--policy", str(policy))["changed"] is True
    # The old key retired: what it alone signed is refused; the live 2.0 stays fine (no request made).
    retired = write_policy(pull.tmp / "retired.json", {signed_scope: [keys["next"].public]})
    assert pull.install(ref2, "--policy", str(retired))["changed"] is False
    assert "found a signature by key" in _refused(pull, ref, retired)


def test_live_venv_checked_again_when_the_policy_changes(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = artifacts.write([wheels.demo1])
    assert pull.install(ref)["changed"] is True  # no policy on this host
    policy = write_policy(pull.tmp / "policy.toml", {}, default=[keys["release"].public])
    assert "found no signature" in _refused(pull, ref, policy)
    _sign(ref, keys["release"], capsys)
    assert pull.install(ref, "--policy", str(policy))["changed"] is False


def test_policy_mistakes_are_one_line(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, keys: dict[str, KeyPair]
) -> None:
    ref = artifacts.write([wheels.demo1])
    gone = pull.tmp / "keys" / "gone.pub"
    policy = write_policy(pull.tmp / "policy.toml", {"oci:/": [gone]})
    assert f"keys[0]: key file {gone} is not there" in _refused(pull, ref, policy)
    assert "is not there" in _refused(pull, ref, pull.tmp / "nothing.toml")
    (pull.tmp / "typo.toml").write_text("[default]\nrequire-signatures = true\n")
    assert "default: unknown key 'require-signatures'" in _refused(pull, ref, pull.tmp / "typo.toml")
    loose = write_policy(pull.tmp / "loose.toml", {}, default=[keys["release"].public])
    loose.chmod(0o666)
    assert "must be owned by root and not writable by group or others" in _refused(pull, ref, loose)


@needs(
    os.geteuid() == 0 and shutil.which("unshare") is not None,
    "root and unshare",
    fix="run the tests as root; apt-get install util-linux",
)
def test_missing_openssl_names_the_package(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, keys: dict[str, KeyPair]
) -> None:
    ref = artifacts.write([wheels.demo1])
    policy = write_policy(pull.tmp / "policy.toml", {}, default=[keys["release"].public])
    # A private mount namespace where /usr/bin/openssl is /dev/null: not a program any more.
    argv = ["unshare", "-m", "sh", "-c", 'mount --bind /dev/null "$(command -v openssl)" && exec "$@"', "sh"]
    proc = subprocess.run(
        [*argv, *pull.argv("install", ref, "--policy", str(policy))],
        env=pull.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "install the distro package openssl (apt-get install openssl" in proc.stderr
    assert not pull.dest.exists()


@pytest.mark.parametrize("point", ["verified", "pulling"])
def test_kill_9_during_a_verified_install(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    capsys: pytest.CaptureFixture[str],
    point: str,
) -> None:
    policy = write_policy(pull.tmp / "policy.toml", {}, default=[keys["release"].public])
    ref = artifacts.write([wheels.demo2, wheels.helper])
    _sign(ref, keys["release"], capsys)
    _kill(_start_paused(pull, ref, point, "--policy", str(policy)))
    assert not (pull.dest.exists() and (pull.dest / "bin").exists())
    assert pull.install(ref, "--policy", str(policy))["changed"] is True
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"
    assert pull.install(ref, "--policy", str(policy))["changed"] is False


def test_python39_zipapp_reads_the_json_policy(
    artifacts: Artifacts,
    wheels: Wheels,
    pull: Pull,
    keys: dict[str, KeyPair],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Python 3.9 has no tomllib: a TOML policy is an error that names the JSON form, never ignored."""
    py39 = require_python("3.9")
    pyz = build_zipapp(tmp_path / "dist" / "venv-pull.pyz")
    ref = artifacts.write([wheels.demo1])
    _sign(ref, keys["release"], capsys)
    scopes = {f"oci:{artifacts.root}": [keys["release"].public]}
    toml = write_policy(pull.tmp / "policy.toml", scopes)
    argv = [str(py39), str(pyz), *pull.argv("install", ref, "--json")[3:]]
    proc = subprocess.run([*argv, "--policy", str(toml)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1
    assert f"{toml}: this Python has no tomllib (3.11+); write the trust policy as JSON" in proc.stderr
    policy = write_policy(pull.tmp / "policy.json", scopes)
    proc = subprocess.run([*argv, "--policy", str(policy)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed"] is True
