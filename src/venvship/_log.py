"""The logging seam: the library logs through ``logger``; the CLI and nox plugin decide where it goes."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Iterator, Sequence, TypeVar

logger = logging.getLogger("venvship")

T = TypeVar("T")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes, not when the handler was made."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
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


def progress(items: Sequence[T], *, label: str) -> Iterator[T]:
    """Yield ``items``, showing a progress line on a terminal and plain log lines otherwise.

    Example: ``for w in progress(wheels, label="building"): build(w)``
    """
    total = len(items)
    tty = sys.stderr.isatty() and logger.isEnabledFor(logging.INFO)
    start = time.monotonic()
    for n, item in enumerate(items, 1):
        if tty:
            sys.stderr.write(f"\r{label}: {n}/{total} {item!s:.60}\033[K")
            sys.stderr.flush()
        else:
            logger.info("%s %d/%d: %s", label, n, total, item)
        yield item
    if tty and total:
        sys.stderr.write(f"\r{label}: {total}/{total} done in {time.monotonic() - start:.1f}s\033[K\n")
        sys.stderr.flush()
