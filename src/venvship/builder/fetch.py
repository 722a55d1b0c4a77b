"""Fetch a remote requirements or constraints file (``-c https://…``) for a build.

HTTPS is verified against ``SSL_CERT_FILE`` when set, else the distro's CA bundle (a pyenv or
uv Python's own default may know no CAs); ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured
as urllib reads them. A failure is one line naming the URL (without credentials) and what went
wrong. A private file is fetched with the login netrc gives for its host (``NETRC`` or
``~/.netrc``) or with ``user:token@`` in its URL: both become basic auth, never sent on a redirect.
The whole fetch has a deadline (``VENVSHIP_FETCH_DEADLINE`` seconds, default 120), not only each read.
"""

from __future__ import annotations

import base64
import netrc
import os
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import RecipeError
from ..host.distro import CA_BUNDLE
from ..host.info import distro_family
from ..redact import redact_url

MAX_SIZE = 32 << 20
TIMEOUT = 60.0
DEADLINE = 120.0
_CHUNK = 64 << 10


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE") or CA_BUNDLE.get(distro_family())
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    return ssl.create_default_context()


def _deadline(where: str) -> float:
    text = os.environ.get("VENVSHIP_FETCH_DEADLINE", "")
    try:
        seconds = float(text) if text else DEADLINE
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise RecipeError(where, f"VENVSHIP_FETCH_DEADLINE: not a number of seconds: {text!r}")
    return seconds


def _login(url: str, where: str) -> tuple[str, tuple[str, str] | None]:
    """Return ``url`` without user info, and the (user, password) to send: the URL's, else netrc's."""
    parts = urlsplit(url)
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if parts.username is not None:
        return bare, (unquote(parts.username), unquote(parts.password or ""))
    file = os.environ.get("NETRC") or str(Path("~/.netrc").expanduser())
    if not os.path.isfile(file):
        return bare, None
    try:
        found = netrc.netrc(file).authenticators(parts.hostname or "")
    except (netrc.NetrcParseError, OSError) as exc:
        # The parser's message may quote a token of the file: name the line only.
        line = getattr(exc, "lineno", None)
        raise RecipeError(where, f"{file}: cannot read netrc" + (f" (line {line})" if line else "")) from exc
    return bare, ((found[0], found[2] or "") if found else None)


def fetch_url(url: str, where: str) -> bytes:
    """Return the body of ``url`` (http or https); raise RecipeError naming ``where`` and the URL.

    Example: ``fetch_url("https://releases.openstack.org/constraints/upper/2025.1", "recipes/x.toml")``
    """
    shown = redact_url(url)
    deadline = _deadline(where)
    bare, login = _login(url, where)
    # ProxyHandler (from the environment) is part of every opener build_opener makes.
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=_ssl_context()))
    request = urllib.request.Request(bare, headers={"User-Agent": "venvship"})
    if login is not None:
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode("ascii")
        request.add_unredirected_header("Authorization", f"Basic {token}")
    end = time.monotonic() + deadline
    chunks: list[bytes] = []
    size = 0
    try:
        with opener.open(request, timeout=min(TIMEOUT, deadline)) as resp:
            while size <= MAX_SIZE:
                # read1 returns what has arrived, so a server dripping bytes meets the deadline.
                chunk: bytes = resp.read1(_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if time.monotonic() > end:
                    raise RecipeError(where, f"cannot fetch {shown}: not done within {deadline:g} s")
    except urllib.error.HTTPError as exc:
        exc.close()  # the error holds the open answer
        raise RecipeError(where, f"cannot fetch {shown}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = getattr(reason, "verify_message", None) or getattr(reason, "strerror", None) or str(reason)
        raise RecipeError(where, f"cannot fetch {shown}: {text}") from exc
    except (OSError, ValueError) as exc:
        raise RecipeError(where, f"cannot fetch {shown}: {exc}") from exc
    if size > MAX_SIZE:
        raise RecipeError(where, f"cannot fetch {shown}: larger than {MAX_SIZE >> 20} MiB")
    return b"".join(chunks)
