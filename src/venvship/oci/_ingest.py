"""A blob answer streamed into a layout: verified while streaming, a broken transfer told apart
from bad content (the one is retried, the other refused). Stdlib only.
"""

from __future__ import annotations

import errno
import http.client
from typing import BinaryIO, cast

from ..errors import ArtifactError
from ._http import Response
from ._retry import Transient
from .layout import Layout

# Writing the blob here failed: a full or read-only file system, a quota.
_LOCAL_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def ingest_answer(resp: Response, *, digest: str, size: int, dest: Layout, what: str) -> bool:
    """Stream the body of ``resp`` into ``dest`` as blob ``digest``; False if it was there.

    A connection broken off (or a body cut short) raises Transient, to be retried; bad content
    and this host's full disk raise at once.
    """
    resp.allow(size)
    body = _Counted(cast(BinaryIO, resp.raw))
    try:
        return dest.ingest(cast(BinaryIO, body), digest=digest, size=size, what=what)
    except OSError as exc:
        if exc.errno in _LOCAL_WRITE_ERRORS:
            raise  # this host's disk, not the connection: asking again cannot help
        raise Transient(
            f"download of {digest} broke off ({exc or type(exc).__name__})", url=resp.url
        ) from exc
    except http.client.HTTPException as exc:
        raise Transient(
            f"download of {digest} broke off ({exc or type(exc).__name__})", url=resp.url
        ) from exc
    except ArtifactError:
        # http.client ends a body cut short with b"" rather than an error: fewer bytes than the
        # descriptor says is a broken connection (retried), not bad content.
        if body.count < size:
            raise Transient(
                f"download of {digest} broke off after {body.count} of {size} bytes", url=resp.url
            ) from None
        raise


class _Counted:
    """A read-only stream that counts the bytes read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.count = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data
