"""The logging seam: the library logs through ``logger``; the CLI and nox plugin decide where it goes.

Long steps show that they are under way (:func:`activity`): on a terminal one line updated in
place, otherwise plain log lines; either way never more than :data:`INTERVAL` seconds of silence
while logging is at INFO (the default of both commands).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from typing import Callable, Iterator, Sequence, TypeVar

logger = logging.getLogger("venvship")

T = TypeVar("T")
INTERVAL = 2.0  # the longest silence during a step, in seconds
_QUICK = 0.5  # a step shorter than this shows nothing
Report = Callable[..., None]  # report(done, note="")


class _TerminalLine:
    """The one progress line on a terminal: drawn in place, cleared before a log record prints."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.shown = False

    def draw(self, text: str, *, keep: bool = False) -> None:
        with self.lock:
            sys.stderr.write(f"\r{text}\033[K" + ("\n" if keep else ""))
            sys.stderr.flush()
            self.shown = not keep

    def clear(self) -> None:
        with self.lock:
            if self.shown:
                sys.stderr.write("\r\033[K")
                self.shown = False


_LINE = _TerminalLine()
# When the library last said anything at INFO or above: a step that starts after a quiet one counts
# its silence from there, so two short silent steps in a row never make one long silence.
_last_record = [time.monotonic()]


def _note_time(record: logging.LogRecord) -> bool:
    if record.levelno >= logging.INFO:
        _last_record[0] = time.monotonic()
    return True


logger.addFilter(_note_time)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes, not when the handler was made."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        with _LINE.lock:
            _LINE.clear()  # the progress line comes back at its next tick
            super().emit(record)


@contextlib.contextmanager
def cli_logging(level: int) -> Iterator[None]:
    """Send the library's records to stderr as plain lines for one command-line run, then put
    the logger back as it was (a command run in-process leaves no handler behind)."""
    saved = logger.handlers[:], logger.propagate, logger.level
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


class _Activity:
    """One step under way: what is done of it, and when it last said so."""

    def __init__(self, label: str, total: int | None, poll: Callable[[], int] | None) -> None:
        self.label, self.total, self.poll = label, total, poll
        self.tty = sys.stderr.isatty()
        self.start = self.said = time.monotonic()
        self.done, self.note, self.spoke = 0, "", False
        self.lock = threading.Lock()

    def text(self) -> str:
        count = f" {self.done}/{self.total}" if self.total else ""
        note = f" {self.note}" if self.note else ""
        return f"{self.label}:{count}{note} ({time.monotonic() - self.start:.0f}s)"

    def report(self, done: int, note: str = "") -> None:
        with self.lock:
            self.done, self.note = done, note
        self.tick()

    def tick(self) -> None:
        with self.lock:
            if self.poll is not None:
                with contextlib.suppress(OSError):
                    self.done = self.poll()
            now = time.monotonic()
            if now - self.start < _QUICK:
                return  # a quick step does not flicker, nor adds a line
            if self.tty:
                _LINE.draw(self.text()[:120])
            elif now - _last_record[0] >= INTERVAL:
                logger.info("%s", self.text())
            else:
                return
            self.said, self.spoke = now, True

    def finish(self, ok: bool) -> None:
        elapsed = time.monotonic() - self.start
        if ok:  # every step's time, quick ones too, for -v and the bench's breakdown
            logger.debug("%s: took %.2fs", self.label, elapsed)
        count = f" {self.total}/{self.total}" if self.total and ok else ""
        if not (ok and elapsed >= INTERVAL):
            if self.tty:
                _LINE.clear()  # a quick step leaves no line behind; a failed one its error
            return
        done = f"{self.label}:{count} done in {elapsed:.1f}s"
        if self.tty:
            _LINE.draw(done, keep=True)
        else:
            logger.info("%s", done)


@contextlib.contextmanager
def activity(
    label: str, *, total: int | None = None, poll: Callable[[], int] | None = None
) -> Iterator[Report]:
    """Show that ``label`` is under way until the block ends; yield ``report(done, note="")``.

    On a terminal: one line updated in place with ``done/total``, the note and the seconds so far.
    Otherwise: a log line at most every :data:`INTERVAL` seconds (and at least, while it lasts).
    A step that took longer than that ends with a ``done in …s`` line. ``poll``: returns what is
    done, asked at every tick (for a child process that reports nothing, e.g. files it wrote).

    Example: ``with activity("pulling", total=9) as report: report(1, "12.1 MiB of 40.0 MiB")``
    """
    if not logger.isEnabledFor(logging.INFO):
        yield lambda done, note="": None
        return
    step = _Activity(label, total, poll)
    stop = threading.Event()

    def ticking() -> None:
        while not stop.wait(0.25):
            step.tick()

    thread = threading.Thread(target=ticking, name=f"progress: {label}", daemon=True)
    thread.start()
    ok = False
    try:
        yield step.report
        ok = True
    finally:
        stop.set()
        thread.join()
        step.finish(ok)


def progress(items: Sequence[T], *, label: str) -> Iterator[T]:
    """Yield ``items``, showing which one is under way as :func:`activity` does.

    Example: ``for w in progress(wheels, label="building wheels"): build(w)``
    """
    with activity(label, total=len(items)) as report:
        for n, item in enumerate(items, 1):
            report(n, str(item))
            yield item
