"""Per-registry auth state: which scheme the registry asked for, and Bearer tokens per scope.

Thread-safe: one lock guards the state and the token cache (token fetches are few and short).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence
from urllib.parse import urlencode, urlsplit

from .._log import logger
from ..artifact.jsondoc import parse_json
from ..errors import RegistryError
from ._http import Transport
from ._retry import RetryPolicy, retrying
from .auth import Challenge, Credentials, load_credentials, parse_challenges

Scopes = tuple[str, ...]

_TOKEN_LIMIT = 1 << 20


class AuthState:
    """Answers 'which ``Authorization`` header goes on this request' for one registry."""

    def __init__(
        self,
        registry: str,
        *,
        transport: Transport,
        policy: RetryPolicy,
        credentials: Credentials | None,
        insecure: bool,
        realm_hosts: Sequence[str] = (),
        lookup: Callable[[str], Credentials | None] = load_credentials,
        basic_only: bool = False,
    ) -> None:
        self.registry = registry
        self._basic_only = basic_only
        self._transport = transport
        self._policy = policy
        self._insecure = insecure
        own = urlsplit(f"//{registry}").hostname or registry
        self._realm_hosts = frozenset(h.lower() for h in (own, *realm_hosts))
        self._lookup = lookup
        self._credentials = credentials
        self._looked_up = credentials is not None
        self._lock = threading.Lock()
        self._basic = False
        self._bearer: Challenge | None = None
        self._tokens: dict[Scopes, tuple[str, float]] = {}
        self.token_fetches = 0

    def credentials(self) -> Credentials | None:
        """Return the explicit credentials, else those stored for this registry (looked up once)."""
        with self._lock:
            if not self._looked_up:
                self._credentials = self._lookup(self.registry)
                self._looked_up = True
            return self._credentials

    def header(self, scopes: Scopes) -> str | None:
        """Return the ``Authorization`` value to send up front for ``scopes``, if the registry wants one."""
        if self._basic:
            creds = self.credentials()
            return creds.basic_header() if creds else None
        if self._bearer is None:
            return None
        creds = self.credentials()
        with self._lock:
            cached = self._tokens.get(scopes)
            if cached is not None and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
            assert self._bearer is not None
            token, ttl = self._fetch_token(self._bearer, scopes, creds)
            # Renew a little early so a token does not expire between the check and the request.
            self._tokens[scopes] = (token, time.monotonic() + max(ttl - 10.0, 1.0))
            return f"Bearer {token}"

    def on_unauthorized(self, values: list[str], scopes: Scopes, *, sent: str | None) -> bool:
        """Learn from a 401; return True if sending the request again with new auth can help."""
        challenges = parse_challenges(values)
        by_scheme = {c.scheme: c for c in challenges}
        # basic_only (a web server): a Bearer challenge names a token realm, any URL, that would
        # get the login (on another port of the same host, too) and a request of its choosing.
        if not self._basic_only and "bearer" in by_scheme and "realm" in by_scheme["bearer"].params:
            challenge = by_scheme["bearer"]
            with self._lock:
                self._bearer = challenge
                self._basic = False
                # An expired or too narrow token: drop it; the caller tries once more with a new one.
                self._tokens.pop(scopes, None)
            return True
        if "basic" in by_scheme:
            if sent is not None and sent.startswith("Basic "):
                return False  # the registry refused these credentials
            with self._lock:
                self._basic = True
                self._bearer = None
            return self.credentials() is not None
        return False

    def _realm_names_allowed(self, realm: str) -> bool:
        """Whether ``realm`` is on the registry's own host (any port) or one the operator named."""
        return any(h in self._realm_hosts for h in _realm_hosts_of(realm))

    def _fetch_token(
        self, challenge: Challenge, scopes: Scopes, creds: Credentials | None
    ) -> tuple[str, float]:
        realm = challenge.params["realm"]
        scheme = urlsplit(realm).scheme
        if scheme not in ("https", "http"):
            raise RegistryError(f"{self.registry}: token realm {realm!r} is not an http(s) URL", url=realm)
        # No downgrade from an HTTPS registry, with credentials or without: an anonymous token
        # fetched over plain HTTP could be swapped on the way.
        if scheme == "http" and not self._insecure:
            raise RegistryError(
                f"{self.registry}: refusing the plain-HTTP token realm {realm}; "
                "use HTTPS (or insecure=True for a test registry)",
                url=realm,
            )
        wanted = scopes or tuple(filter(None, [challenge.params.get("scope", "")]))
        if creds is not None and not self._realm_names_allowed(realm):
            # A registry names any URL as its realm: credentials go only to its own host, or to
            # a host the operator named (--token-realm-host); elsewhere the token is anonymous.
            logger.warning(
                "%s: token realm %s is on another host; asking it without credentials "
                "(name the host with --token-realm-host to send them)",
                self.registry,
                realm,
            )
            creds = None
        url = _token_url(realm, challenge, wanted, creds)
        headers = {"Accept": "application/json"}
        if creds is not None:
            headers["Authorization"] = creds.basic_header()

        def attempt() -> bytes:
            with self._transport.send("GET", url, headers=headers) as resp:
                if resp.status in (401, 403):
                    what = "rejected the credentials" if creds else "requires credentials"
                    raise RegistryError(
                        f"{self.registry}: authentication failed ({resp.status}): the token server {what}; "
                        + ("check credentials" if creds else "log in (docker login) or pass credentials"),
                        status=resp.status,
                        url=realm,
                    )
                if resp.status != 200:
                    detail = resp.error_text()
                    raise RegistryError(
                        f"{self.registry}: token server answered {resp.status}"
                        + (f" ({detail})" if detail else ""),
                        status=resp.status,
                        url=realm,
                    )
                return resp.read_limited(_TOKEN_LIMIT)

        body = retrying(attempt, policy=self._policy, what=f"{self.registry}: token request")
        self.token_fetches += 1
        doc = parse_json(
            body,
            self.registry,
            error=lambda at, why: RegistryError(f"{at}: token answer is {why}", url=realm),
        )
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.registry}: token server sent no token", url=realm)
        expires = doc.get("expires_in")
        ttl = float(expires) if isinstance(expires, (int, float)) and expires > 0 else 60.0
        logger.debug("%s: new token for %s (%.0fs)", self.registry, " ".join(wanted) or "registry", ttl)
        return token, ttl


def _realm_hosts_of(realm: str) -> tuple[str, ...]:
    """Return the names ``realm``'s host may be allowed by: ``host``, and ``host:port`` with a port."""
    parts = urlsplit(realm)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return ()
    return (host, f"{host}:{port}") if port is not None else (host,)


def _token_url(realm: str, challenge: Challenge, scopes: Scopes, creds: Credentials | None) -> str:
    """Return the token request URL: the realm with the service, the scopes and the account."""
    query: list[tuple[str, str]] = []
    if challenge.params.get("service"):
        query.append(("service", challenge.params["service"]))
    query.extend(("scope", s) for s in scopes)
    if creds is not None:
        query.append(("account", creds.username))
    return realm + ("&" if "?" in realm else "?") + urlencode(query)


def repo_scopes(repo: str, *, push: bool = False, mount_from: Sequence[str] = ()) -> Scopes:
    """Return the token scopes for pulling from (or pushing to) ``repo``, plus mount sources."""
    own = f"repository:{repo}:{'pull,push' if push else 'pull'}"
    return (own, *(f"repository:{r}:pull" for r in mount_from))
