"""The persistent log: every install, rollback and prune appends one JSON line; a log another user
could change is refused (as root) with one warning, and never costs the run it records."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.needs import needs, needs_nobody

from .conftest import DISTRO_PYTHON, Artifacts, Pull, Wheels

NOBODY = 65534
as_root = needs(
    os.geteuid() == 0, "root", fix="run the tests as root: the log's trust rules apply to root only"
)


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_each_install_rollback_and_prune_appends_one_line(
    artifacts: Artifacts, wheels: Wheels, pull: Pull, tmp_path: Path
) -> None:
    log = tmp_path / "logs" / "venv-pull.log"
    env = {"VENVSHIP_LOG": str(log)}
    v1 = artifacts.write([wheels.demo1])
    v2 = artifacts.write([wheels.demo2], version="2.0")
    first = pull.install(v1, env=env)
    assert pull.install(v1, env=env)["changed"] is False
    second = pull.install(v2, env=env)
    pull("rollback", str(pull.dest), "--facts-dir", str(pull.facts), env=env)
    pull("prune", "--cache", str(pull.cache), "--keep", "1", env=env)
    failed = pull("install", v1.replace(":1.0", ":9.9"), env=env, ok=False)
    assert failed.returncode == 1
    pull("install", v1, "--no-log", env=env)  # not logged

    lines = _lines(log)
    assert [(x["command"], x["outcome"]) for x in lines] == [
        ("install", "changed"),
        ("install", "unchanged"),
        ("install", "changed"),
        ("rollback", "changed"),
        ("prune", "changed"),
        ("install", "error"),
    ]
    install, again, upgrade, rollback, prune, error = lines
    assert install["digest"] == first["digest"] and install["previous_digest"] == ""
    assert install["dest"] == str(pull.dest) and install["ref"] == v1 and install["cache"] == str(pull.cache)
    assert again["digest"] == first["digest"]
    assert upgrade["digest"] == second["digest"] and upgrade["previous_digest"] == first["digest"]
    assert rollback["digest"] == first["digest"] and rollback["previous_digest"] == second["digest"]
    assert rollback["dest"] == str(pull.dest)
    assert prune["cache"] == str(pull.cache) and len(prune["generations"]) == 1
    assert error["error"] == failed.stderr.strip().removeprefix("venv-pull: error: ")
    assert error["error"] and error["digest"] == ""
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        assert isinstance(line["duration"], float) and 0 <= line["duration"] < 180
        assert line["error"] == "" or line["outcome"] == "error"
        assert line["uid"] == os.geteuid()
    st = log.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == os.geteuid()


def test_the_log_option_wins_over_the_environment(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    env_log, option_log = pull.tmp / "env.log", pull.tmp / "option" / "venv-pull.log"
    ref = artifacts.write([wheels.demo1])
    pull("install", ref, "--log", str(option_log), env={"VENVSHIP_LOG": str(env_log)})
    assert [x["command"] for x in _lines(option_log)] == ["install"]
    assert not env_log.exists()
    pull("install", ref, env={"VENVSHIP_LOG": ""})  # empty: no log, no warning
    assert len(_lines(option_log)) == 1


def _one_warning(proc: subprocess.CompletedProcess[str], log: Path) -> str:
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "not logged" in line]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith(f"warning: the run was not logged to {log}: ")
    assert "Traceback" not in proc.stderr
    return warnings[0]


@as_root
def test_a_log_folder_others_can_write_is_refused_and_the_install_goes_on(
    artifacts: Artifacts, wheels: Wheels, pull: Pull
) -> None:
    folder = pull.tmp / "shared-logs"
    folder.mkdir()
    folder.chmod(0o777)  # anyone could swap the file root appends to
    log = folder / "venv-pull.log"
    proc = pull("install", artifacts.write([wheels.demo1]), "--log", str(log))
    assert "must be owned by root and not writable by group or others" in _one_warning(proc, log)
    assert not log.exists()
    assert (pull.dest / "bin" / "python").exists()  # installed all the same


@as_root
def test_a_log_another_user_planted_is_not_written(artifacts: Artifacts, wheels: Wheels, pull: Pull) -> None:
    folder = pull.tmp / "logs"
    folder.mkdir(mode=0o755)
    ref = artifacts.write([wheels.demo1])
    # A symlink to a file root must not append to: never followed.
    target = pull.tmp / "shadow"
    target.write_text("root's own file\n")
    log = folder / "venv-pull.log"
    log.symlink_to(target)
    _one_warning(pull("install", ref, "--log", str(log)), log)
    assert target.read_text() == "root's own file\n"
    # A file nobody owns (made before the folder was locked down): its lines could be forged.
    log.unlink()
    log.write_text("")
    os.chown(log, NOBODY, NOBODY)
    assert "must be owned by this user" in _one_warning(pull("install", ref, "--log", str(log)), log)
    assert log.read_text() == ""
    # A FIFO with no reader: refused at once, never waited on.
    log.unlink()
    os.mkfifo(log)
    _one_warning(pull("install", ref, "--log", str(log), "--rebuild"), log)


@needs_nobody
def test_a_user_other_than_root_logs_to_a_place_of_their_own(src_for_others: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="venvship-home-", dir="/tmp"))
    try:
        os.chmod(home, 0o755)
        os.chown(home, NOBODY, NOBODY)
        code = "from venvship.install.runlog import default_log_file; print(default_log_file())"
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", DISTRO_PYTHON, "-c", code]
        base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src_for_others), "HOME": str(home)}
        out = subprocess.run(argv, env=base, capture_output=True, text=True, timeout=60, check=True).stdout
        assert out.strip() == f"{home}/.local/state/venvship/venv-pull.log"
        state = {**base, "XDG_STATE_HOME": str(home / "state")}
        out = subprocess.run(argv, env=state, capture_output=True, text=True, timeout=60, check=True).stdout
        assert out.strip() == f"{home}/state/venvship/venv-pull.log"
        # Root's default, for comparison.
        argv = [DISTRO_PYTHON, "-c", code]
        out = subprocess.run(argv, env=base, capture_output=True, text=True, timeout=60, check=True).stdout
        assert out.strip() == "/var/log/venvship/venv-pull.log"
    finally:
        shutil.rmtree(home)
