"""One request to a registry: auth, a second try after a 401, redirects, statuses as RegistryError.

:class:`~venvship.oci.registry.RegistryClient` speaks the distribution API through this; what
is below the API (sockets, TLS, retries) is in ``_http``, the auth state in ``_session``.

Where a URL comes from an answer (a redirect, an upload location, a next page), two rules hold:
a client made for HTTPS sends nothing over plain HTTP, and the ``Authorization`` header (and the
401 dance that may send credentials to a token realm) is only for the exact scheme, host and
port the client was made for. Stdlib only.
"""

from __future__ import annotations

from typing import Callable, Sequence
from urllib.parse import urljoin, urlsplit

from ..errors import RegistryError
from ._http import Body, Response, Transport, make_ssl_context, repo_of, shown
from ._retry import RetryPolicy
from ._session import AuthState, Scopes
from .auth import Credentials, load_credentials

_REDIRECTS = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int]:
    """Return the scheme, host and port of ``url``, the port defaulted (``https://h`` → ``h``, 443).

    Example: ``origin("https://Registry.example/v2/") == ("https", "registry.example", 443)``
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise RegistryError(f"invalid port in {shown(url)}", url=url) from exc
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", port or _DEFAULT_PORTS.get(scheme, 0)


class Connection:
    """Sends requests to one registry (``host[:port]``) with the right ``Authorization`` header."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool,
        ca_file: str | None,
        credentials: Credentials | None,
        timeout: float,
        token_realm_hosts: Sequence[str] = (),
        policy: RetryPolicy,
        connect_timeout: float | None = None,
        lookup: Callable[[str], Credentials | None] = load_credentials,
        basic_only: bool = False,
    ) -> None:
        self.registry = registry
        self.insecure = insecure
        self.base = f"{'http' if insecure else 'https'}://{registry}"
        self._origin = origin(self.base)
        self._transport = Transport(
            timeout=timeout, ssl_context=make_ssl_context(ca_file), connect_timeout=connect_timeout
        )
        self._auth = AuthState(
            registry,
            transport=self._transport,
            policy=policy,
            credentials=credentials,
            insecure=insecure,
            realm_hosts=token_realm_hosts,
            lookup=lookup,
            basic_only=basic_only,
        )

    def where(self, repo: str) -> str:
        """Return ``host/repo``, as error messages name a repository."""
        return f"{self.registry}/{repo}"

    def url(self, repo: str, tail: str) -> str:
        """Return the API URL ``/v2/<repo>/<tail>``."""
        return f"{self.base}/v2/{repo}/{tail}"

    def open(
        self,
        method: str,
        url: str,
        *,
        scopes: Scopes,
        headers: dict[str, str] | None = None,
        body: Callable[[], Body] | None = None,
    ) -> Response:
        """Send one request (one more after a 401 that new auth can fix; redirects for GET/HEAD)."""
        push = any(scope.endswith(",push") for scope in scopes)
        own = self._own(url)
        for auth_round in range(2):
            hdrs = dict(headers or {})
            auth = self._auth.header(scopes) if own else None
            if auth:
                hdrs["Authorization"] = auth
            resp = self._transport.send(method, url, headers=hdrs, body=body() if body else None)
            if resp.status == 401:
                values = resp.headers.get_all("WWW-Authenticate") or []
                resp.close()
                # Elsewhere, a challenge could name a token realm to send the credentials to.
                if own and auth_round == 0 and self._auth.on_unauthorized(values, scopes, sent=auth):
                    continue
                raise self._auth_error(url, push=push)
            if resp.status in _REDIRECTS and method in ("GET", "HEAD"):
                return self._follow(resp, method, hdrs)
            return resp
        raise self._auth_error(url, push=push)  # pragma: no cover - the loop returns or raises

    def _own(self, url: str) -> bool:
        """Return True if ``url`` is on the registry's own origin; refuse plain HTTP unless insecure."""
        here = origin(url)
        if here[0] != "https" and not self.insecure:
            raise RegistryError(
                f"{self.registry}: refusing a downgrade to plain HTTP ({shown(url)}); "
                "only a client made insecure for this registry speaks HTTP",
                url=url,
            )
        return here == self._origin

    def _follow(self, resp: Response, method: str, headers: dict[str, str]) -> Response:
        """Follow redirects (blob storage backends); credentials go only to the registry itself,
        and not back to it from elsewhere (that URL would be another server's choice)."""
        own = True
        for _ in range(5):
            location = resp.header("Location")
            resp.close()
            if not location:
                raise RegistryError(f"{self.registry}: redirect without Location", url=resp.url)
            url = urljoin(resp.url, location)
            own = self._own(url) and own
            hdrs = dict(headers)
            if not own:
                hdrs.pop("Authorization", None)
            resp = self._transport.send(method, url, headers=hdrs)
            if resp.status not in _REDIRECTS:
                return resp
        resp.close()
        raise RegistryError(f"{self.registry}: too many redirects", url=resp.url)

    def _auth_error(self, url: str, *, push: bool) -> RegistryError:
        repo = repo_of(url)
        where = self.where(repo) if repo else self.registry
        if self._auth.credentials() is not None:
            msg = f"{where}: authentication failed (401): check credentials"
            if push:
                msg += " (and that the account may push to this repository)"
        else:
            msg = (
                f"{where}: authentication required (401): no credentials found for {self.registry}; "
                "run `docker login`, set REGISTRY_AUTH_FILE, or pass credentials"
            )
        return RegistryError(msg, status=401, url=url)


def expect(resp: Response, ok: tuple[int, ...], where: str, what: str) -> None:
    """Raise RegistryError unless ``resp.status`` is in ``ok``: 404 and 403 in words, the server's detail."""
    if resp.status in ok:
        return
    detail = resp.error_text()
    suffix = f": {detail}" if detail else ""
    if resp.status == 404:
        msg = f"{where}: {what} not found (404){suffix}"
    elif resp.status == 403:
        msg = f"{where}: access denied (403) to {what}; the account lacks permission{suffix}"
    else:
        msg = f"{where}: {what} failed ({resp.status} {resp.reason}){suffix}"
    raise RegistryError(msg, status=resp.status, url=resp.url)


def upload_location(resp: Response, where: str) -> str:
    """Return the absolute upload URL from an answer's ``Location`` header."""
    location = resp.header("Location")
    if not location:
        raise RegistryError(f"{where}: upload answer has no Location header", url=resp.url)
    return urljoin(resp.url, location)
