"""Long steps say they are under way: an updating line on a terminal, plain lines otherwise, and
never more than about two seconds of silence at the default verbosity."""

from __future__ import annotations

import io
import logging
import re
import time

import pytest

from venvship._log import INTERVAL, activity, cli_logging, logger, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_long_step_speaks_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    with cli_logging(logging.INFO):
        logger.info("started")  # the silence starts with the step
        with activity("resolving") as report:
            report(0, "pip")
            time.sleep(INTERVAL * 2.3)
    lines = err.getvalue().splitlines()[1:]
    # Seconds as patterns: a loaded machine may say a tick late, never less often than the interval.
    ticks = [re.fullmatch(r"resolving: pip \((\d+)s\)", line) for line in lines[:-1]]
    assert len(ticks) >= 2 and all(ticks), lines
    seconds = [int(tick.group(1)) for tick in ticks if tick]
    assert seconds == sorted(set(seconds)) and seconds[0] >= INTERVAL, lines
    assert re.fullmatch(r"resolving: done in \d+\.\ds", lines[-1]), lines


def test_silence_counts_from_the_last_line_not_from_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two steps, each shorter than the interval, do not make one silence longer than it."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    with cli_logging(logging.INFO):
        logger.info("started")
        time.sleep(INTERVAL * 0.8)  # a first step that says nothing
        with activity("resolving"):
            time.sleep(INTERVAL * 0.6)
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and re.fullmatch(r"resolving: \(\ds\)", lines[1]), lines


def test_a_quick_step_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    with cli_logging(logging.INFO):
        assert list(progress(["a", "b"], label="building wheels")) == ["a", "b"]
    assert err.getvalue() == ""


def test_on_a_terminal_one_line_is_updated_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    with cli_logging(logging.INFO), activity("pulling", total=3) as report:
        for n in range(1, 4):
            report(n, f"{n} MiB of 3 MiB")
            time.sleep(0.8)
        logger.info("a log line clears the progress line first")
        time.sleep(INTERVAL)
    text = err.getvalue()
    assert re.search(r"\rpulling: 2/3 2 MiB of 3 MiB \(\d+s\)\033\[K", text), text
    assert "\r\033[Ka log line clears the progress line first\n" in text
    assert re.search(r"\rpulling: 3/3 done in \d+\.\ds\033\[K\n$", text)
    assert "\n" not in text.split("a log line")[0]  # updates before it stayed on one line


def test_quiet_shows_no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    with cli_logging(logging.ERROR), activity("pulling", total=1) as report:
        report(1)
        time.sleep(INTERVAL + 0.3)
    assert err.getvalue() == ""
