"""HTTP plumbing for the registry client: one connection per request, timeouts and deadlines.

A new connection per request keeps the client thread-safe without a pool; bodies are streamed
from file objects in 1 MiB blocks, so memory does not grow with blob size. Stdlib only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import os
import re
import socket
import ssl
import threading
from email.message import Message
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence, TypeVar, Union
from urllib.parse import urlsplit

from .._log import logger
from .._text import printable
from ..artifact.jsondoc import parse_json
from ..errors import RegistryError, VenvshipError
from ..host.trust import check_existing
from ._retry import Transient

T = TypeVar("T")
Body = Union[bytes, BinaryIO, None]
BlobSource = Union[str, "os.PathLike[str]", BinaryIO]
R = TypeVar("R")

_BLOCK = 1 << 20
_ERROR_BODY_LIMIT = 64 << 10
_SAID_LIMIT = 200
# The slowest transfer a request may make, on top of twice its read timeout: a peer that sends one
# byte per read timeout never trips that timeout, and would hold an install, with its locks, for
# days. 32 KiB/s lets a 1 GiB blob take 9 hours. An answer counts as at most 16 MiB (the largest
# document read whole) unless the caller allows more (a blob of a known size).
MIN_SPEED = 32 << 10
_DEFAULT_LENGTH = 16 << 20


class _Deadline:
    """Shuts the socket ``sock()`` returns down unless :meth:`cancel` comes within ``seconds``: a
    blocked read then ends, and the request fails as a connection broken off (retried, boundedly)."""

    def __init__(self, sock: Callable[[], socket.socket | None], seconds: float, what: str) -> None:
        self._sock, self._what, self._seconds = sock, what, seconds
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        sock = self._sock()
        logger.warning(
            "%s: not done within %.0fs (slower than %d KiB/s); closing the connection",
            self._what,
            self._seconds,
            MIN_SPEED >> 10,
        )
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _allowed(timeout: float, length: int) -> float:
    """Return how long a request may take to move ``length`` bytes, at :data:`MIN_SPEED`."""
    return 2 * timeout + length / MIN_SPEED


def _length(value: str | None) -> int:
    return int(value) if value and value.isdigit() else _DEFAULT_LENGTH


class Response:
    """An open HTTP response; read it (or stream it) and close it, e.g. with ``with``. Reading
    the body may take as long as its length allows at :data:`MIN_SPEED`, not longer."""

    def __init__(
        self,
        conn: http.client.HTTPConnection,
        raw: http.client.HTTPResponse,
        url: str,
        *,
        timeout: float,
        sock: socket.socket | None,
    ) -> None:
        self._conn = conn
        self._sock = sock  # conn lets go of it when the answer says "Connection: close"
        self.raw = raw
        self.url = url
        self.status = raw.status
        self.reason = said(raw.reason)
        self.headers: Message = raw.headers
        self._timeout = timeout
        # The length the server declares may be a lie meant to stretch the deadline: capped.
        length = _DEFAULT_LENGTH if raw.length is None else min(raw.length, _DEFAULT_LENGTH)  # 0 for HEAD
        self._deadline = _Deadline(
            self._socket, _allowed(timeout, length), f"{raw.status} answer of {shown(url)}"
        )

    def allow(self, length: int) -> None:
        """Give reading the rest of the body the time ``length`` bytes take (a blob's known size)."""
        self._deadline.cancel()
        self._deadline = _Deadline(
            self._socket, _allowed(self._timeout, length), f"download from {shown(self.url)}"
        )

    def _socket(self) -> socket.socket | None:
        return self._sock

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def read_limited(self, limit: int) -> bytes:
        """Return the whole body; raise RegistryError if it is longer than ``limit`` bytes."""
        try:
            data = self.raw.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise Transient(
                f"connection lost while reading the answer ({_describe(exc)})", url=self.url
            ) from exc
        if len(data) > limit:
            raise RegistryError(f"answer larger than {limit} bytes", status=self.status, url=self.url)
        return data

    def error_text(self) -> str:
        """Return a short summary of an error body (distribution's ``errors`` list, if any)."""
        try:
            data = self.raw.read(_ERROR_BODY_LIMIT)
        except (OSError, http.client.HTTPException):
            return ""
        try:
            doc = parse_json(data, self.url)
            errors = doc.get("errors") if isinstance(doc, dict) else None
            if isinstance(errors, list) and errors:
                parts = []
                for err in errors[:3]:
                    if isinstance(err, dict):
                        parts.append(f"{err.get('code', '?')}: {err.get('message', '')}".strip())
                return said("; ".join(parts))
        except VenvshipError:
            pass  # not distribution's JSON: the first line of the text instead
        text = data.decode("utf-8", "replace").strip()
        return said(text.splitlines()[0]) if text else ""

    def close(self) -> None:
        self._deadline.cancel()
        self.raw.close()
        self._conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport:
    """Sends one HTTP request per call on a fresh connection, with a socket timeout.

    ``connect_timeout`` bounds connecting (TCP and TLS handshake) on its own, so an unreachable
    host (a dead mirror) costs that long, not the read timeout a slow answer may need.
    """

    def __init__(
        self, *, timeout: float, ssl_context: ssl.SSLContext, connect_timeout: float | None = None
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ssl_context = ssl_context

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: Body = None,
    ) -> Response:
        """Send one request; return the response, or raise Transient / RegistryError.

        429 and 5xx answers raise Transient (after reading a little of the body for the message).
        """
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn: http.client.HTTPConnection
        first_timeout = self.timeout if self.connect_timeout is None else self.connect_timeout
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.netloc, timeout=first_timeout, context=self.ssl_context, blocksize=_BLOCK
            )
        elif parts.scheme == "http":
            conn = http.client.HTTPConnection(parts.netloc, timeout=first_timeout, blocksize=_BLOCK)
        else:
            raise RegistryError(f"unsupported URL scheme in {url}", url=url)
        hdrs = dict(headers)
        hdrs.setdefault("User-Agent", "venvship")
        if body is None and method in ("POST", "PUT", "PATCH"):
            hdrs.setdefault("Content-Length", "0")
        logger.debug("%s %s", method, shown(url))
        sending = _allowed(self.timeout, _length(hdrs.get("Content-Length")) if body is not None else 0)
        deadline = _Deadline(
            lambda: conn.sock, (self.connect_timeout or 0) + sending, f"{method} {shown(url)}"
        )
        try:
            if self.connect_timeout is not None:
                conn.connect()  # under the connect timeout; the request then reads under its own
                conn.sock.settimeout(self.timeout)
            conn.request(method, path, body=body, headers=hdrs)
            sock = conn.sock
            raw = conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise RegistryError(
                f"{parts.netloc}: TLS certificate not trusted ({exc.verify_message}); pass its CA with "
                "--ca-file FILE (a mirror: ca-file in the mirror configuration) or SSL_CERT_FILE, or, "
                "only if the registry has no TLS, --insecure (a mirror: http://HOST, or insecure = true)",
                url=url,
            ) from exc
        except ssl.SSLError as exc:
            conn.close()
            raise RegistryError(
                f"{parts.netloc}: TLS handshake failed ({exc.reason or exc}); does it speak HTTPS? "
                "A registry without TLS needs --insecure (a mirror: http://HOST, or insecure = true)",
                url=url,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Transient(
                f"cannot reach {parts.netloc} ({_describe(exc)})", url=url, reached=False
            ) from exc
        finally:
            deadline.cancel()
        resp = Response(conn, raw, url, timeout=self.timeout, sock=sock)
        logger.debug("%s %s -> %d", method, shown(url), resp.status)
        if resp.status == 429 or resp.status >= 500:
            detail = resp.error_text()
            resp.close()
            raise Transient(
                f"{parts.netloc} answered {resp.status} {resp.reason}" + (f" ({detail})" if detail else ""),
                url=url,
                status=resp.status,
                retry_after=_retry_after(resp.headers.get("Retry-After")),
            )
        return resp


def said(text: str) -> str:
    """Return what a server said (a reason phrase, an error message) fit for one line of root's
    output: control characters escaped (a line break or a terminal escape would forge lines or
    rewrite the screen), at most 200 characters.

    Example: ``said("gone\\nvenv-pull: done") == "gone\\\\nvenv-pull: done"``
    """
    shown = printable(text[: _SAID_LIMIT * 2])
    return shown if len(shown) <= _SAID_LIMIT else shown[: _SAID_LIMIT - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    # http.client's errors quote what the server sent (a status line that is not HTTP): its words.
    return said(str(exc) or type(exc).__name__)


def make_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Return a verifying TLS context: the system CAs (``SSL_CERT_FILE`` is honoured) plus ``ca_file``.

    As root, each CA file or folder must be one only root can change: ``SSL_CERT_FILE`` may come
    from a shell that kept another user's environment (``su`` without ``-``), and whoever writes
    a trusted CA can answer for any registry.
    """
    named = [(os.environ.get("SSL_CERT_FILE", ""), "SSL_CERT_FILE"), (ca_file or "", "--ca-file")]
    named += [(d, "SSL_CERT_DIR") for d in os.environ.get("SSL_CERT_DIR", "").split(os.pathsep)]
    check_existing((Path(path), what) for path, what in named if path)
    ctx = ssl.create_default_context()
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(f"{ca_file}: cannot load CA certificates ({exc})") from exc
    return ctx


def shown(url: str) -> str:
    """Return ``url`` without its query, to log or show (signed storage URLs carry secrets there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def repo_of(url: str) -> str:
    """Return the repository named in a ``/v2/<repo>/…`` URL, or ""."""
    path = urlsplit(url).path
    match = re.match(r"^/v2/(.+?)/(?:blobs|manifests|tags)/", path)
    return match.group(1) if match else ""


def parse_tags(data: bytes, where: str) -> list[str]:
    doc = parse_json(data, where, error=lambda at, reason: RegistryError(f"{at}: tag list is {reason}"))
    tags = doc.get("tags") if isinstance(doc, dict) else None
    return [t for t in tags or [] if isinstance(t, str)]


def tell(source: BlobSource) -> int | None:
    if isinstance(source, (str, os.PathLike)):
        return 0
    try:
        return source.tell() if source.seekable() else None
    except OSError:
        return None


@contextlib.contextmanager
def open_body(source: BlobSource, start: int | None, *, retry: bool, where: str) -> Iterator[BinaryIO]:
    """Yield a file object for one upload attempt: paths are reopened, streams rewound to ``start``."""
    if retry and start is None:
        raise RegistryError(f"{where}: upload failed and the stream cannot be rewound to retry")
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            yield fh
    else:
        yield source


def rewinder(body: BinaryIO, start: int | None) -> Callable[[], Body]:
    """Return a body factory that rewinds ``body`` first (a 401 or a retry sends it again)."""

    def rewind() -> Body:
        if start is not None:
            body.seek(start)
        return body

    return rewind


def parallel_map(fn: Callable[[T], R], items: Sequence[T], max_workers: int) -> list[R]:
    """Return ``[fn(i) for i in items]`` computed by at most ``max_workers`` threads; first error wins."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items))))
    try:
        futures = [pool.submit(fn, item) for item in items]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                for other in futures:
                    other.cancel()
                future.result()  # raises the first error
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True)
