"""Fetch a remote requirements or constraints file (``-c https://…``) for a build.

HTTPS is verified against ``SSL_CERT_FILE`` when set, else the distro's CA bundle (a pyenv or
uv Python's own default may know no CAs); ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured
as urllib reads them. A failure is one line naming the URL and what went wrong.
"""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request

from ..distro import CA_BUNDLE
from ..errors import RecipeError
from ..hostinfo import distro_family

MAX_SIZE = 32 << 20
TIMEOUT = 60.0


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE") or CA_BUNDLE.get(distro_family())
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    return ssl.create_default_context()


def fetch_url(url: str, where: str) -> bytes:
    """Return the body of ``url`` (http, https or file); raise RecipeError naming ``where`` and the URL.

    Example: ``fetch_url("https://releases.openstack.org/constraints/upper/2025.1", "recipes/x.toml")``
    """
    # ProxyHandler (from the environment) is part of every opener build_opener makes.
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=_ssl_context()))
    request = urllib.request.Request(url, headers={"User-Agent": "venvship"})
    try:
        with opener.open(request, timeout=TIMEOUT) as resp:
            data: bytes = resp.read(MAX_SIZE + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # the error holds the open answer
        raise RecipeError(where, f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = getattr(reason, "verify_message", None) or getattr(reason, "strerror", None) or str(reason)
        raise RecipeError(where, f"cannot fetch {url}: {text}") from exc
    except (OSError, ValueError) as exc:
        raise RecipeError(where, f"cannot fetch {url}: {exc}") from exc
    if len(data) > MAX_SIZE:
        raise RecipeError(where, f"cannot fetch {url}: larger than {MAX_SIZE >> 20} MiB")
    return data
