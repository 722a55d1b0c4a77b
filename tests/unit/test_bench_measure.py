"""The bench's measuring rules (#23): tools interleaved with their baselines run by run, which
medians it trusts, and one targets row per target with its tmpfs and disk figures."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _procs import Series, Stats, interleaved
from _rows import Row, Target, format_targets


def test_series_run_in_turn_run_by_run(tmp_path: Path) -> None:
    order = tmp_path / "order"

    def series(name: str) -> Series:
        return Series(
            command=lambda i: ["/bin/sh", "-c", f"echo {name}{i} >> {order}"],
            env={"PATH": "/usr/bin:/bin"},
        )

    runs = interleaved(3, [series("tool"), series("base")], log=tmp_path / "log")
    assert [len(r) for r in runs] == [3, 3]
    assert order.read_text().split() == ["tool0", "base0", "tool1", "base1", "tool2", "base2"]


def test_a_median_is_trusted_from_five_close_runs_only() -> None:
    assert Stats(walls=(1.0, 1.1, 1.0, 0.9, 1.0), rss_kib=0).trust == ""
    assert "fewer than 5" in Stats(walls=(1.0, 1.0, 1.0), rss_kib=0).trust
    assert "spread over" in Stats(walls=(1.0, 1.0, 1.0, 1.0, 3.0), rss_kib=0).trust


def test_one_targets_row_judged_on_tmpfs_with_disk_beside() -> None:
    steady = (1.0, 1.0, 1.0, 1.0, 1.0)
    target = Target(max_seconds=1.5)
    rows = [
        Row("install", "upgrade", Stats(walls=steady, rss_kib=0), "venv-pull", target=target, fs="tmpfs"),
        Row(
            "install",
            "upgrade",
            Stats(walls=tuple(w * 2 for w in steady), rss_kib=0),
            "venv-pull",
            target=target,
            fs="disk",
            where="unpack and link 1.90 s",
        ),
    ]
    text = format_targets(rows)
    assert "1 PASS, 0 MISS (judged on tmpfs" in text
    [line] = [line for line in text.splitlines() if "install: upgrade" in line]
    assert "tmpfs    1.00s" in line and "PASS " in line and "disk     2.00s" in line and "MISS " in line
    assert "MISS on disk, where the time goes: unpack and link 1.90 s" in text


def test_the_build_breakdown_reads_the_steps_the_build_times_itself(tmp_path: Path) -> None:
    """Each step of a build logs its own time under -v; the bench turns those lines into where
    a cold build's time went. The lines come from venvship's own progress code, not a copy."""
    import logging
    import time

    from _procs import Run
    from bench_build import STEP_MARKS, where

    from venvship._log import activity, logger

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep, level = Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.DEBUG)
    try:
        for label in ("resolving", "building wheels", "writing demo:1.0-debian-12-amd64-cp311"):
            with activity(label):
                time.sleep(0.01)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    marks = {}
    for name, rx in STEP_MARKS.items():
        found = [float(m.group(1)) for ln in lines if (m := re.search(rx, ln))]
        if found:
            marks[name] = found[0]
    assert set(marks) == {"resolve", "wheel builds", "writing"}, lines
    assert all(0.01 <= s < 1 for s in marks.values()), marks
    said = where(Run(wall=5.0, rss_kib=0, marks=marks))
    assert said.startswith("resolve 0.") and said.endswith("(of 5.00 s)") and "wheel builds" in said
