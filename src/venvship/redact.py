"""URLs as they may be shown or published: without user info, query or secret-bearing fragment.

A constraints URL or a direct requirement may carry a credential (``https://ci:TOKEN@host/x``,
``…?token=TOKEN``); what the config, the provenance, the SBOM or an error line records keeps the
scheme, host and path, and of the fragment only what pip needs to find the source (``egg=``,
``subdirectory=``). Stdlib only: error lines on either side use it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_KEPT_FRAGMENT = ("egg=", "subdirectory=")


def redact_url(url: str) -> str:
    """Return ``url`` without user info, query or fragment parts other than ``egg=``/``subdirectory=``.

    Example: ``redact_url("https://ci:T@h/u.txt?token=T")`` → ``"https://h/u.txt"``
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    fragment = "&".join(p for p in parts.fragment.split("&") if p.startswith(_KEPT_FRAGMENT))
    netloc = parts.netloc.rpartition("@")[2]
    out = urlunsplit((parts.scheme, netloc, parts.path, "", fragment))
    # urlunsplit writes "git+file:/p" for "git+file:///p" (a scheme it does not know takes no "//").
    if not netloc and url.startswith(f"{parts.scheme}://") and not out.startswith(f"{parts.scheme}://"):
        out = f"{parts.scheme}://{out[len(parts.scheme) + 1 :]}"
    return out


def redact(text: str) -> str:
    """Return ``text`` (a requirement or constraint line) with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
