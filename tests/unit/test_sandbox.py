"""The build user and the checks on what the build code could have changed (#20)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from tests.needs import needs_nobody, needs_root

from venvship._process import run
from venvship.builder.builduser import alone, build_user
from venvship.builder.sandbox import unsound
from venvship.errors import BuildError, ProcessTimeout


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


UID = 4243  # a build user without a passwd entry, which no other test runs as


@needs_root
@needs_nobody
def test_the_build_user_must_be_this_builds_alone() -> None:
    """A process of the build user that this build started (in a pid namespace of its own, as the
    sandbox starts each child) is the build's; one started any other way is not."""
    ns = ["unshare", "--pid", "--fork", "--kill-child"]
    drop = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "sleep", "30"]
    own = subprocess.Popen([*ns, *drop[:-2], "--pdeathsig=KILL", *drop[-2:]])  # ends with unshare
    try:
        deadline = time.monotonic() + 10
        while not any(_user_of(pid) == UID for pid in _children_of(own.pid)):
            assert time.monotonic() < deadline, "the sandboxed sleep did not start"
            time.sleep(0.05)
        alone(UID)  # its own child in its own pid namespace: the build's
        other = subprocess.Popen(drop)  # as the build user, in no namespace of a build
        try:
            deadline = time.monotonic() + 10
            while _user_of(other.pid) != UID:
                assert time.monotonic() < deadline, "the other sleep did not start"
                time.sleep(0.05)
            with pytest.raises(BuildError) as caught:
                alone(UID)
            assert f"(pid {other.pid}" in str(caught.value) or f", {other.pid}" in str(caught.value)
        finally:
            other.kill()
            other.wait()
    finally:
        own.kill()
        own.wait()


def _user_of(pid: int) -> int | None:
    try:
        return Path(f"/proc/{pid}").stat().st_uid
    except OSError:
        return None


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


@needs_root
@needs_nobody
def test_build_code_out_of_the_process_group_still_dies_when_its_child_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a time limit the child's process group is killed, ``unshare`` with it. Build code can
    take pip, the first process of the pid namespace, out of that group (by ptrace it makes pip
    call ``setsid``); it must die all the same, and every process of the namespace with it. Here
    that first process calls ``setsid`` itself: making pip do it takes a ptrace injection."""
    monkeypatch.setenv("VENVSHIP_TIMEOUT_OTHER", "1")
    mark = f"venvship-left-{uuid.uuid4().hex}"
    code = "import os, sys, time; os.setsid(); time.sleep(60)"
    with pytest.raises(ProcessTimeout):
        run(["/usr/bin/python3", "-c", code, mark], untrusted=True, as_user=(UID, UID), kind="other")
    deadline = time.monotonic() + 5
    while left := _running(mark):
        if time.monotonic() > deadline:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"build code outlived its time limit: pid {left}")
        time.sleep(0.1)


def _running(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
