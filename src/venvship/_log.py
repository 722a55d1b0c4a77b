"""The logging seam: the library logs through ``logger``; the CLI and nox plugin decide where it goes."""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterator, Sequence, TypeVar

logger = logging.getLogger("venvship")

T = TypeVar("T")


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
