"""Root's locks are root's: no other user can take them, and a long wait ends naming the holder (#19)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from tests.needs import needs_nobody

from venvship._fsutil import LockTimeout, file_lock
from venvship.install.generations import FACTS_PENDING, mark_facts_pending

SRC = Path(__file__).resolve().parents[2] / "src"

# flock() needs no write access: any user who can open the file for reading can hold it.
HOLD = """
import fcntl, sys, time
try:
    fd = open(sys.argv[1], "rb")
except OSError as exc:
    print("refused", exc.errno, flush=True)
    sys.exit(0)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(30)
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can read, as /var/lib and /openstack/venvs are (pytest's own is 0700)."""
    outer = Path(tempfile.mkdtemp(prefix="venvship-locks-", dir="/tmp"))
    os.chmod(outer, 0o755)
    try:
        yield outer
    finally:
        shutil.rmtree(outer)


@needs_nobody
@pytest.mark.parametrize("made_before", [False, True])
def test_nobody_cannot_hold_roots_lock(shared_dir: Path, made_before: bool) -> None:
    lock = shared_dir / ".lock"
    if made_before:  # a lock file left 0644 by an earlier venv-pull
        lock.write_bytes(b"")
        os.chmod(lock, 0o644)
    with file_lock(lock):
        pass
    assert lock.stat().st_mode & 0o777 == 0o600
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", HOLD]
    attacker = subprocess.Popen([*argv, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert attacker.stdout is not None
        assert attacker.stdout.readline().split()[0] == "refused"
        with file_lock(lock, timeout=2):
            pass
    finally:
        attacker.kill()
        attacker.wait()
        attacker.stdout.close()  # type: ignore[union-attr]


def test_giving_up_names_the_holders_pid(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    code = (
        "import sys, time\nfrom venvship._fsutil import file_lock\n"
        "with file_lock(__import__('pathlib').Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n    time.sleep(30)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout) as info, file_lock(lock, timeout=0.3):
            pass
        assert f"(PID {holder.pid})" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]


def test_pending_mark_never_writes_into_a_store_file(tmp_path: Path) -> None:
    # A layer may ship a file of the marker's name, hard-linked from the store: the mark is a new file.
    store_file = tmp_path / "store" / "blob"
    store_file.parent.mkdir()
    store_file.write_bytes(b"shared with every venv")
    generation = tmp_path / "gen"
    generation.mkdir()
    os.link(store_file, generation / FACTS_PENDING)
    mark_facts_pending(generation)
    assert store_file.read_bytes() == b"shared with every venv"
    assert (generation / FACTS_PENDING).read_bytes() == b""
    assert (generation / FACTS_PENDING).stat().st_ino != store_file.stat().st_ino
