"""Robustness of venv-pull: lock order, orphaned installer children, what a failed run leaves behind,
drift in ``status``, and one clear line for user errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.needs import needs_nobody
from venvship.artifact.documents import Fact

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels


def _start_paused(pull: Pull, argv: list[str], point: str, *, seconds: str) -> subprocess.Popen[str]:
    """Start ``argv`` stopping at ``point`` (the ``VENVSHIP_TEST_PAUSE_AT`` seam) and wait until it does."""
    env = pull.env({"VENVSHIP_TEST_PAUSE_AT": point, "VENVSHIP_TEST_PAUSE_SECONDS": seconds})
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if f"paused at {point}" in line:
            return proc
    proc.wait(timeout=60)
    raise AssertionError(f"{argv[3]} never reached {point!r} (exit {proc.returncode})")


def _wait_until_open(pid: int, path: Path) -> None:
    """Wait until process ``pid`` has ``path`` open (bounded)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        folder = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in folder.iterdir()]
        except (FileNotFoundError, ProcessLookupError):
            links = []  # an fd closed between listing and reading: look again
        if str(path) in links:
            return
        if not folder.exists():
            raise AssertionError(f"process {pid} exited before it opened {path}")
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never opened {path}")


def _alive(pid: int) -> bool:
    """Return True if ``pid`` runs (a zombie no one reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _stop(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def test_prune_and_install_starting_together_do_not_deadlock(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    pull.install(artifacts.write([wheels.demo1]))  # the cache now records the destination
    ref2 = artifacts.write([wheels.demo2], version="2.0")
    # prune holds the cache lock and is frozen there (SIGSTOP inside its pause) while an install
    # starts: the install must not take the destination lock that prune will ask for next.
    prune_argv = pull.argv("prune", "--cache", str(pull.cache), "--keep", "1", "--json")
    prune = _start_paused(pull, prune_argv, "prune-locked", seconds="1")
    os.kill(prune.pid, signal.SIGSTOP)
    install = subprocess.Popen(
        pull.argv("install", ref2, "--json"),
        env=pull.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_open(install.pid, pull.cache / ".gc.lock")  # the install waits for the cache lock
        os.kill(prune.pid, signal.SIGCONT)
        try:
            prune_out, prune_err = prune.communicate(timeout=60)
            install_out, install_err = install.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError("deadlock: prune and install wait for each other's lock") from None
    finally:
        _stop(prune, install)
    assert prune.returncode == 0, prune_err
    assert install.returncode == 0, install_err
    assert json.loads(install_out)["changed"] is True
    assert json.loads(prune_out)["generations"] == []  # prune ran first: one generation, nothing to do
    assert pull.python("import demo; print(demo.VERSION)") == "2.0"


# Installed into the artifact's install env (PYTHONPATH): runs in the first run's installer child
# only (VENVSHIP_TEST_ORPHAN names a folder). It stands for a pip that is still writing after
# venv-pull was killed: it waits until a rerun has made its staging folder anew (or until it gives
# up), then writes into its own staging path, as the orphaned installer would.
_ORPHAN = """
import os, sys, time
dest = sys.argv[1]
with open(os.path.join(os.environ["VENVSHIP_TEST_ORPHAN"], "child.pid"), "w") as fh:
    fh.write(str(os.getpid()))
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    if os.path.exists(os.path.join(dest, "pyvenv.cfg")) and not os.path.exists(os.path.join(dest, "orphan-seen")):
        if os.path.exists(os.path.join(dest, "bin")):
            open(os.path.join(dest, "orphan-seen"), "w").close()
    time.sleep(0.02)
try:
    with open(os.path.join(dest, "ORPHAN"), "w") as fh:
        fh.write("written by a child of a killed run\\n")
except OSError:
    pass
"""


def test_kill_9_while_making_the_venv_the_rerun_waits_for_the_orphan(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path, host_folder: Path
) -> None:
    # The seam: `--python` names a wrapper that, asked to make the venv, leaves a child behind that
    # writes into the staging folder later, as a slow installer child of a killed run would. It
    # inherits the destination's lock, so a rerun must wait for it, not share the folder with it.
    # Armed by a file, not a variable: venv-pull's children get an allow-listed environment.
    orphan = tmp_path / "orphan.py"
    orphan.write_text(_ORPHAN)
    marks = tmp_path / "marks"
    marks.mkdir()
    armed = tmp_path / "armed"
    wrapper = host_folder / "wrapper" / "python3"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -m venv "*) if [ -e {armed} ]; then\n'
        "    for last; do :; done\n"
        f'    VENVSHIP_TEST_ORPHAN={marks} {DISTRO_PYTHON} {orphan} "$last" &\n'
        "fi;; esac\n"
        f'exec {DISTRO_PYTHON} "$@"\n'
    )
    wrapper.chmod(0o755)
    armed.touch()
    ref = artifacts.write([wheels.demo1])
    first = subprocess.Popen(
        pull.argv("install", ref, "--python", str(wrapper)),
        env=pull.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child, outlived = 0, False
    try:
        deadline = time.monotonic() + 60
        while not (marks / "child.pid").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the child never started"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)  # venv-pull dies making the venv; its child runs on
        first.wait(timeout=30)
        armed.unlink()
        child = int((marks / "child.pid").read_text())
        result = pull.install(ref, "--python", str(wrapper))  # at once, while the orphan still runs
    finally:
        if child and _alive(child):
            outlived = True
            os.kill(child, signal.SIGKILL)
    assert result["changed"] is True
    assert not (pull.dest / "ORPHAN").exists()  # nothing of the orphan's in the new generation
    assert not outlived
    assert pull.python("import demo; print(demo.VERSION)") == "1.0"
    root = pull.dest.parent / ".demo.venvship"
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == [result["generation"]]
    assert pull("verify", str(pull.dest)).returncode == 0
    assert pull.install(ref, "--python", str(wrapper))["changed"] is False


@pytest.mark.parametrize(
    "ref",
    ["oci:{oci}:demo:9.9", "oci:{tmp}/no-such-layout:demo:1.0", "127.0.0.1:9/nothing/demo:1.0"],
    ids=["unknown-tag", "missing-layout", "unreachable-registry"],
)
def test_a_failed_install_leaves_no_cache_behind(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path, ref: str
) -> None:
    artifacts.write([wheels.demo1])
    ref = ref.format(oci=artifacts.root, tmp=tmp_path)
    proc = pull("install", ref, "--insecure", ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("venv-pull: error: ")  # after any retry notes
    assert not os.path.lexists(pull.cache)
    assert not os.path.lexists(pull.dest.parent)


def test_check_of_a_new_artifact_leaves_no_cache_behind(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    result = pull.install(artifacts.write([wheels.demo1]), "--check")
    assert result["changed"] is True
    assert not os.path.lexists(pull.cache)


def test_status_shows_drift(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    ref = artifacts.write([wheels.demo2, wheels.helper])
    pull.install(ref)

    def status(*args: str) -> dict[str, object]:
        out = pull("status", str(pull.dest), "--cache", str(pull.cache), "--json", *args).stdout
        drift: dict[str, object] = json.loads(out)["drift"]
        return drift

    clean = status()
    assert clean["link"] == "ok" and clean["files"] == 0 and clean["hashed"] is False
    assert isinstance(clean["checked"], int) and clean["checked"] > 5
    site = next(pull.dest.glob("lib/python3*/site-packages"))
    text = (site / "demo" / "__init__.py").read_text()
    (site / "demo" / "__init__.py").write_text(text.replace("2.0", "2.1"))  # same size
    assert status()["files"] == 0  # sizes alone cannot see it ...
    assert status("--hashes")["files"] == 1  # ... hashes can
    (site / "helper" / "__init__.py").unlink()
    assert status() == {**clean, "files": 1}
    line = pull("status", str(pull.dest), "--cache", str(pull.cache)).stdout.splitlines()[0]
    assert (
        line
        == f"{pull.dest}: drift: 1 of {clean['checked']} files differ from RECORD (by size; verify lists them)"
    )
    # Every destination the cache knows, with its drift; a link pointing elsewhere is drift too.
    live = os.readlink(pull.dest)
    os.unlink(pull.dest)
    os.symlink("/usr", pull.dest)
    listing = json.loads(pull("status", "--cache", str(pull.cache), "--json").stdout)["venvs"]
    assert [(s["dest"], s["drift"]["link"]) for s in listing] == [(str(pull.dest), "foreign")]
    os.unlink(pull.dest)
    assert status()["link"] == "missing"
    os.symlink(live + "-gone", pull.dest)
    assert status()["link"] == "broken"
    out = pull("status", str(pull.dest), "--cache", str(pull.cache)).stdout
    assert out.splitlines()[0] == f"{pull.dest}: drift: link broken"


def _one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Check that ``proc`` failed with one ``venv-pull: error:`` line (after any progress notes)."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("venv-pull: error: ")]
    assert len(errors) == 1 and proc.stderr.endswith(errors[0] + "\n"), proc.stderr
    for needle in needles:
        assert needle in errors[0]
    return errors[0]


def test_user_errors_are_one_line(artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path) -> None:
    ref = artifacts.write([wheels.demo1])
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    # A cache that is a file; a destination that is a file (refused before anything is pulled).
    _one_error_line(pull("install", ref, "--cache", str(a_file), defaults=False, ok=False), str(a_file))
    proc = pull("install", ref, "--dest", str(a_file), "--cache", str(pull.cache), defaults=False, ok=False)
    _one_error_line(proc, str(a_file))
    assert not os.path.lexists(tmp_path / ".a-file.venvship")
    assert not os.path.lexists(pull.cache)
    _one_error_line(pull("status", str(a_file), ok=False), str(a_file), "not a venv installed by venv-pull")
    _one_error_line(pull("status", "--cache", str(a_file), ok=False), str(a_file))
    _one_error_line(pull("prune", "--cache", str(a_file), ok=False), str(a_file), "no blob cache")
    pull.install(ref)
    proc = pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts), ok=False)
    _one_error_line(proc, "no previous generation")
    # A facts file that is not text: named, not a UnicodeDecodeError traceback.
    ref2 = artifacts.write([wheels.demo2], version="2.0", facts=[_fact()])
    pull.facts.mkdir(exist_ok=True)
    (pull.facts / "demo.fact").write_bytes(b"\xff\xfe[demo]\n")
    _one_error_line(pull("install", ref2, ok=False), str(pull.facts / "demo.fact"))


def _fact() -> Fact:
    return Fact(file="demo", section="demo", option="venv_tag", value="2.0")


@needs_nobody
def test_unreadable_cache_is_one_line(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, src_for_others: Path
) -> None:
    pull.install(artifacts.write([wheels.demo1]))
    # A cache only root may read, and venv-pull run as nobody with the distro's python (pytest's
    # own temp folder and interpreter may be out of nobody's reach).
    outer = Path(tempfile.mkdtemp(prefix="venvship-unreadable-", dir="/tmp"))
    try:
        os.chmod(outer, 0o755)
        cache = outer / "cache"
        shutil.copytree(pull.cache, cache)
        os.chmod(cache, 0o700)
        for command in ("status", "prune"):
            argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", DISTRO_PYTHON]
            argv += pull.argv(command, "--cache", str(cache))[1:]
            env = {**pull.env(), "PYTHONPATH": str(src_for_others)}
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            # …and says what a user other than root can do about it.
            _one_error_line(proc, str(cache), "Permission denied", "run it as root", "--cache")
    finally:
        shutil.rmtree(outer)


@needs_nobody
def test_a_facts_folder_this_user_cannot_write_is_refused_before_the_pull(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, src_for_others: Path
) -> None:
    ref = artifacts.write([wheels.demo1], facts=[_fact()])
    # nobody owns the destination and the cache, not the facts folder (as /etc/ansible/facts.d).
    outer = Path(tempfile.mkdtemp(prefix="venvship-facts-", dir="/tmp"))
    try:
        os.chmod(outer, 0o755)
        layout = outer / "oci"
        shutil.copytree(artifacts.root, layout)
        facts = outer / "facts"
        facts.mkdir(mode=0o755)
        work = outer / "work"
        work.mkdir()
        os.chown(work, 65534, 65534)
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", DISTRO_PYTHON]
        argv += pull.argv("install", ref.replace(str(artifacts.root), str(layout)), defaults=False)[1:]
        argv += ["--dest", str(work / "venvs" / "demo"), "--cache", str(work / "cache")]
        argv += ["--facts-dir", str(facts), "--no-distro-packages"]
        env = {**pull.env(), "PYTHONPATH": str(src_for_others)}
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        _one_error_line(proc, str(facts), "not writable", "--facts-dir")
        assert not (work / "venvs" / "demo").exists()  # nothing switched
        assert not list((work / "cache" / "blobs" / "sha256").iterdir())  # nothing pulled
    finally:
        shutil.rmtree(outer)


def test_status_and_prune_on_a_fresh_host_agree_and_name_the_cache(pull: Pull, tmp_path: Path) -> None:
    fresh = tmp_path / "no-cache"  # nothing installed yet: no cache either
    status = pull("status", "--cache", str(fresh))
    assert status.stdout == f"no venvs installed (none recorded in the cache {fresh})\n"
    assert json.loads(pull("status", "--cache", str(fresh), "--json").stdout)["cache"] == str(fresh)
    prune = pull("prune", "--cache", str(fresh))
    assert prune.stdout == f"{fresh}: pruned 0 generations, 0 cache blobs\n"
    data = json.loads(pull("prune", "--cache", str(fresh), "--json").stdout)
    assert data["cache"] == str(fresh) and data["generations"] == [] and data["blobs"] == 0
    assert not os.path.lexists(fresh)  # looking made nothing


def test_status_help_says_what_hashes_cost(pull: Pull) -> None:
    out = pull("status", "--help").stdout
    assert "--hashes" in out and "compared by size" in " ".join(out.split())


def test_relative_paths_are_taken_from_the_working_directory(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    ref = artifacts.write([wheels.demo1])
    rel = ["--dest", "venvs/rel", "--cache", "relcache", "--facts-dir", "facts", "--no-distro-packages"]
    proc = subprocess.run(
        pull.argv("install", ref, *rel, "--json", defaults=False),
        cwd=pull.tmp,
        env=pull.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dest"] == str(pull.tmp / "venvs" / "rel")
    # The venv works from anywhere: nothing in it points at a path relative to the old cwd.
    assert pull.python("import demo; print(demo.VERSION)", dest=pull.tmp / "venvs" / "rel") == "1.0"
    status = pull("status", str(pull.tmp / "venvs" / "rel"), "--cache", str(pull.tmp / "relcache"))
    assert "no drift" in status.stdout
