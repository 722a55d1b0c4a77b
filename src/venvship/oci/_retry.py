"""Which registry failures are retried, and how: transient ones (no answer, 429, 5xx, a body cut
short), a bounded number of times with capped exponential backoff. Stdlib only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from .._log import logger
from ..errors import RegistryError

T = TypeVar("T")


class Transient(Exception):
    """A failure worth retrying: a connection error, 429 or a 5xx answer, or a body cut short.

    ``reached``: False when no answer came at all (refused, unreachable, timed out).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: float | None = None,
        reached: bool = True,
    ):
        super().__init__(message)
        self.url = url
        self.status = status
        self.retry_after = retry_after
        self.reached = reached


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures."""

    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 10.0
    # False: a server that gave no answer at all is not asked again (a mirror: the next source is
    # its retry, so a dead one costs one connect timeout); one that answered 5xx still is.
    unreachable: bool = True

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Return the wait before retry number ``attempt`` (0-based), capped at ``max_backoff``."""
        wanted = retry_after if retry_after is not None else self.backoff * (2**attempt)
        return max(0.0, min(self.max_backoff, wanted))


def retrying(fn: Callable[[], T], *, policy: RetryPolicy, what: str) -> T:
    """Return ``fn()``, calling it again after transient failures; raise RegistryError when out of tries."""
    attempt = 0
    while True:
        try:
            return fn()
        except Transient as exc:
            if attempt >= policy.retries or not (exc.reached or policy.unreachable):
                raise RegistryError(
                    f"{what}: {exc} (gave up after {attempt + 1} attempts)",
                    status=exc.status,
                    url=exc.url,
                ) from exc
            delay = policy.delay(attempt, exc.retry_after)
            logger.warning(
                "%s: %s; retrying in %.1fs (attempt %d of %d)",
                what,
                exc,
                delay,
                attempt + 2,
                policy.retries + 1,
            )
            time.sleep(delay)
            attempt += 1
