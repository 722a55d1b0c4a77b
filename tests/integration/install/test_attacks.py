"""venv-pull attacked as an intruder would (#10): hand-made artifacts that try to choose what root
runs, an unprivileged user's folders and links, state files and RECORDs that lie, a hostile umask.

Each test fails on the venv-pull before #10: it ran the artifact's own pip, any
``config.python.executable``, trusted folders nobody owned, removed a live generation whose state
it could not read, and read any path a RECORD named.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.needs import needs_root
from venvship.builder.package import write_to_layout
from venvship.oci.layout import Layout

from .conftest import Artifacts, Pull, Wheels, make_wheel, wheel_of


def _marker_wheel(out: Path, name: str, version: str, marker: Path) -> Path:
    """A fake ``pip`` wheel whose ``pip/__main__.py`` leaves ``marker`` behind if anything runs it."""
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    return make_wheel(out, name, version, extra={f"{name}/__main__.py": code})


def _rewrite(artifacts: Artifacts, ref: str, version: str, **changes: object) -> str:
    """Write the artifact ``ref`` again as ``version`` with config fields changed (hand-made)."""
    layout = Layout(artifacts.root)
    config = dataclasses.replace(artifacts.config(ref), version=version, **changes)  # type: ignore[arg-type]
    blobs = [*(w.digest for w in (*config.lock, *config.tools))]
    blobs += [d.digest for d in config.layers.distributions] if config.layers else []
    write_to_layout(layout, config, {d: layout.blob_path(d) for d in blobs})
    return f"oci:{artifacts.root}:demo:{version}"


def test_an_unpinned_pip_wheel_in_the_artifact_never_runs(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    marker = tmp_path / "fake-pip-ran"
    fake = _marker_wheel(tmp_path / "fake", "pip", "99.0", marker)
    ref = artifacts.write([wheels.demo1], layers=False)
    layout = Layout(artifacts.root)
    layout.put_file(fake, digest=wheel_of(fake).digest, size=wheel_of(fake).size)
    evil = _rewrite(artifacts, ref, "6.6.6", install_tool="pip", tools=(wheel_of(fake),))
    for extra in ([], ["--check-command", "true"]):
        proc = pull("install", evil, "--from-wheels", *extra, ok=False)
        assert proc.returncode == 1
        assert "pip-99.0-py3-none-any.whl" in proc.stderr and "is not a tool venv-pull pins" in proc.stderr
        assert not marker.exists() and not os.path.lexists(pull.dest)
    # The operator may allow it by its digest: then, and only then, it runs.
    proc = pull("install", evil, "--from-wheels", "--allow-tool", wheel_of(fake).digest, ok=False)
    assert marker.exists()


@pytest.mark.parametrize("where", ["in the live venv", "not a python"])
def test_the_artifact_cannot_name_the_program_root_runs(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path, where: str
) -> None:
    first = pull.install(artifacts.write([wheels.demo1]))
    marker = tmp_path / "ran"
    if where == "in the live venv":
        # A script an earlier artifact shipped into the venv, named "python3" to pass any name check.
        program = pull.dest.parent / ".demo.venvship" / first["generation"] / "bin" / "python3.11-evil"
        program = program.with_name("python3")
        program.unlink()
        program.write_text(f"#!/bin/sh\necho ran > {marker}\n")
        program.chmod(0o755)
        expected = "which venvship manages: refusing it"
    else:
        program = tmp_path / "tool" / "not-python"
        program.parent.mkdir()
        program.write_text(f"#!/bin/sh\necho ran > {marker}\n")
        program.chmod(0o755)
        expected = "is not the name of a Python interpreter"
    evil = _rewrite(
        artifacts,
        artifacts.write([wheels.demo1], version="2.0"),
        "6.6.6",
        python=dataclasses.replace(
            artifacts.config(f"oci:{artifacts.root}:demo:2.0").python, executable=str(program)
        ),
    )
    for extra in (["--check"], []):
        proc = pull("install", evil, *extra, ok=False)
        assert proc.returncode == 1 and expected in proc.stderr, proc.stderr
        assert not marker.exists()
    assert os.readlink(pull.dest).endswith(first["generation"])


@needs_root
def test_a_cache_another_user_owns_is_refused(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    pull.cache.mkdir()
    os.chown(pull.cache, 65534, 65534)  # nobody pre-created it (the README's cache lived in /tmp)
    proc = pull("install", artifacts.write([wheels.demo1]), ok=False)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert f"{pull.cache} (owner nobody, mode 0755): the blob cache must be owned by root" in line
    assert not os.path.lexists(pull.dest) and not list(pull.cache.iterdir())


@needs_root
def test_a_cache_another_user_owns_decides_nothing_before_it_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    """The cache's records of other venvs' destinations are read only once the cache is root's: a
    user's record must not decide where root may install (nor what an error says)."""
    (pull.cache / "refs").mkdir(parents=True)
    (pull.cache / "refs" / "planted.json").write_text(
        json.dumps({"dest": str(pull.dest.parent), "blobs": []})
    )
    for folder in (pull.cache, pull.cache / "refs", pull.cache / "refs" / "planted.json"):
        os.chown(folder, 65534, 65534)
    ref = artifacts.write([wheels.demo1])
    for extra in (["--check"], []):
        proc = pull("install", ref, *extra, ok=False)
        assert proc.returncode == 1
        [line] = proc.stderr.splitlines()
        assert "the blob cache must be owned by root" in line, line
    assert not os.path.lexists(pull.dest)


@needs_root
def test_a_generations_folder_another_user_made_is_refused(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    root = pull.dest.parent / ".demo.venvship"
    root.mkdir(parents=True)
    os.chown(root, 65534, 65534)
    (root / ".lock").symlink_to("/etc/venvship-pwned")  # root would have followed it
    proc = pull("install", artifacts.write([wheels.demo1]), ok=False)
    assert proc.returncode == 1 and "the generations folder must be owned by root" in proc.stderr
    assert not os.path.lexists("/etc/venvship-pwned") and not os.path.lexists(pull.dest)
    assert sorted(p.name for p in root.iterdir()) == [".lock"]


def test_a_lock_symlink_is_never_followed(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    root = pull.dest.parent / ".demo.venvship"
    root.mkdir(parents=True)
    target = tmp_path / "elsewhere"
    (root / ".lock").symlink_to(target)
    proc = pull("install", artifacts.write([wheels.demo1]), ok=False)
    assert proc.returncode == 1 and not target.exists()
    assert proc.stderr.splitlines() == [
        f"venv-pull: error: {root / '.lock'}: Too many levels of symbolic links"
    ]


def test_an_unreadable_state_never_costs_the_live_venv(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    first = pull.install(artifacts.write([wheels.demo1]))
    live = pull.dest.parent / ".demo.venvship" / first["generation"]
    state = live / "venvship-state.json"
    data = json.loads(state.read_text())
    data["facts"] = [["one row", "too short"]]  # one malformed row
    state.write_text(json.dumps(data))
    # An upgrade that fails its health check: the live venv must still be there and live.
    broken = make_wheel(tmp_path / "w", "demo", "2.0", body="raise ImportError('broken on purpose')")
    proc = pull("install", artifacts.write([broken], version="2.0"), ok=False)
    assert proc.returncode == 1 and "broken on purpose" in proc.stderr
    assert live.is_dir() and os.readlink(pull.dest).endswith(first["generation"])
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"
    status = json.loads(pull("status", str(pull.dest), "--cache", str(pull.cache), "--json").stdout)
    assert first["generation"] in json.dumps(status)  # reported, as unknown, not removed


def test_verify_never_leaves_the_venv(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    first = pull.install(artifacts.write([wheels.demo1]))
    site = next(
        (pull.dest.parent / ".demo.venvship" / first["generation"]).glob("lib/python3*/site-packages")
    )
    record = site / "demo-1.0.dist-info" / "RECORD"
    # A RECORD that names secrets and an endless device: replaced (it is a link into the store).
    text = record.read_text() + "../../../../../../../../etc/shadow,sha256=AAAA,1\n/dev/zero,sha256=AAAA,1\n"
    record.unlink()
    record.write_text(text)
    proc = subprocess.run(
        pull.argv("verify", str(pull.dest), "--json"),
        env=pull.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(proc.stdout)
    outside = [d for d in report["drifted"] if d.startswith("outside the venv:")]
    assert len(outside) == 2 and not any("modified: /etc/shadow" in d for d in report["drifted"])


def test_a_deleted_distribution_is_noticed(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo1, wheels.helper])
    first = pull.install(ref)
    site = next(
        (pull.dest.parent / ".demo.venvship" / first["generation"]).glob("lib/python3*/site-packages")
    )
    shutil.rmtree(site / "helper")
    shutil.rmtree(site / "helper-1.0.dist-info")
    proc = pull("verify", str(pull.dest), "--cache", str(pull.cache), ok=False)
    assert (
        proc.returncode == 1
        and "missing distribution:" in proc.stdout
        and "helper-1.0.dist-info" in proc.stdout
    )
    again = pull.install(ref)
    assert again["changed"] is True  # never "unchanged" with a distribution gone: made again
    assert pull.python("import helper; print(helper.VERSION)") == "1.0"


def test_a_hostile_umask_leaves_nothing_writable_by_others(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    argv = pull.argv("install", artifacts.write([wheels.demo2]))
    subprocess.run(["sh", "-c", 'umask 000; exec "$@"', "sh", *argv], env=pull.env(), check=True, timeout=180)
    writable = [
        str(p)
        for root in (pull.dest.resolve(), pull.cache)
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and p.stat().st_mode & stat.S_IWOTH
    ]
    assert writable == []


def test_a_killed_download_leaves_no_temp_file_behind_the_next_run(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo1])
    pull.install(ref)
    blobs = pull.cache / "blobs" / "sha256"
    (blobs / ".in-999999-abcd.tmp").write_bytes(b"half a blob")  # a process long gone
    pull.install(artifacts.write([wheels.demo2], version="2.0"))
    assert not list(blobs.glob(".in-*"))
