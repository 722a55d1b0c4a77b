"""Registry mirrors: a :class:`~venvship.oci.source.Source` that reads through mirrors first and
falls back to the origin (the registry the reference names).

The rules, so that a mirror can save the origin traffic but never change what is installed:

- Content is asked for by digest wherever possible; every byte is verified against it, so a
  mirror can serve only what the origin would have. A tag (and a referrers list, which also
  changes in place) is resolved at the origin, where it is current; at the mirrors first only
  when ``tags=True`` (a stale mirror may then serve an older tag's content, still verified).
  A tag is resolved once per run: the rest of the run reads what it named then.
- Mirrors are tried in order; the first that has a manifest or blob serves it, the origin last.
  A mirror that lacks something (404) is asked again for the next item.
- A mirror that fails otherwise (unreachable, 5xx, refused login, wrong bytes) is left out for
  the rest of the run, after one warning: a dead mirror costs its connect timeout once, not once
  per blob. A mirror that gave no answer is not asked again: the next source is its retry. One
  that answered 5xx or 429, or broke a download off, is asked twice more first: a pull-through
  cache filling itself for a whole fleet at once is busy, not gone, and leaving it out would send
  that host to the origin for everything else.
- Each mirror has its own TLS settings and credentials (looked up under its own host); the
  origin's login is never sent to a mirror.

Stdlib only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from .._log import logger
from ..artifact.documents import Descriptor
from ..errors import BadReference, RegistryError, VenvshipError
from .layout import Layout
from .reference import RegistryRef, parse_ref

if TYPE_CHECKING:
    from .registry import RegistryClient, RegistrySource

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT = 3.0
MIRROR_RETRIES = 2


@dataclass(frozen=True)
class Mirror:
    """One mirror: where it is (``host[:port][/path]``, which replaces the matched prefix), how to
    reach it, and how long connecting to it may take before it counts as dead."""

    location: str
    insecure: bool = False
    ca_file: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def ref_for(self, ref: RegistryRef, prefix: str) -> RegistryRef:
        """Return ``ref`` as this mirror holds it: ``prefix`` (which ``ref`` is under) replaced.

        Example: ``Mirror(location="cache:5000/os-mirror").ref_for(parse_ref("reg.example/os/keystone:1"), "reg.example/os")``
        → ``cache:5000/os-mirror/keystone:1``
        """
        name = f"{ref.registry}/{ref.repository}"
        moved = self.location.rstrip("/") + name[len(prefix.rstrip("/")) :]
        try:
            parsed = parse_ref(moved)
        except BadReference as exc:
            raise BadReference(f"mirror {self.location} of {ref}: {exc}") from None
        assert isinstance(parsed, RegistryRef)  # a location is host[:port][/path], never oci:
        return RegistryRef(
            registry=parsed.registry, repository=parsed.repository, tag=ref.tag, digest=ref.digest
        )

    def client(self) -> RegistryClient:
        """Return a client for this mirror: its TLS settings, its own stored login, and retries only
        of answers (a 5xx, a download broken off), never of a connection that failed."""
        from .registry import RegistryClient  # loaded only when a registry is named

        host = self.location.split("/", 1)[0]
        return RegistryClient(
            host,
            insecure=self.insecure,
            ca_file=self.ca_file,
            connect_timeout=self.connect_timeout,
            retries=MIRROR_RETRIES,
            backoff=0.25,
            retry_unreachable=False,
        )


def _name(source: RegistrySource) -> str:
    return f"{source.ref.registry}/{source.ref.repository}"


class MirrorSource:
    """A :class:`~venvship.oci.source.Source` over an origin repository and its mirrors.

    ``served`` maps each blob digest fetched into a cache to the repository it came from
    (``host/repo``), for a report of where the bytes came from.

    Example: ``MirrorSource(RegistrySource(ref, client=RegistryClient(ref.registry)),
    [RegistrySource(m.ref_for(ref, ref.registry), client=m.client())])`` for a :class:`Mirror` ``m``;
    ``venvship.install.registries.open_install_source`` makes it from the host's configuration.
    """

    def __init__(
        self, origin: RegistrySource, mirrors: Sequence[RegistrySource], *, tags: bool = False
    ) -> None:
        self.origin = origin
        self.mirrors = tuple(mirrors)
        self.tags = tags
        self.served: dict[str, str] = {}
        self._tags: dict[str, tuple[Descriptor, bytes]] = {}
        self._dropped: set[str] = set()
        self._lock = threading.Lock()

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        by_digest = reference.startswith("sha256:")
        if not by_digest and reference in self._tags:
            return self._tags[reference]
        try:
            found = self._first(
                lambda s: s.get_manifest(reference), mirrors=by_digest or self.tags, what=reference
            )[0]
        except RegistryError as exc:
            if by_digest or self.tags or not self.mirrors or exc.status in (401, 403, 404):
                raise
            raise RegistryError(
                f"{exc}; tags resolve at the origin only: name a digest (REPO@sha256:…) or allow "
                "--mirror-tags to install while it is unreachable",
                status=exc.status,
                url=exc.url,
            ) from exc
        if not by_digest:
            # One answer per tag and run: what follows (selection, the pull) reads the content the
            # tag named when the run began, also if it moves meanwhile, and the origin is asked once.
            self._tags[reference] = found
        return found

    def fetch_blob(self, digest: str, size: int, cache: Layout) -> bool:
        if cache.has_blob(digest, size):
            return False
        fetched, where = self._first(lambda s: s.fetch_blob(digest, size, cache), mirrors=True, what=digest)
        if fetched:  # not when another install on this host put it there meanwhile
            with self._lock:
                self.served[digest] = where
        return fetched

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        # A list that grows in place, like a tag: a mirror's may lack the newest signature, so an
        # empty one there is asked of the next source rather than taken as the answer.
        return self._first(
            lambda s: s.referrers(digest), mirrors=self.tags, what=f"referrers of {digest}", accept=bool
        )[0]

    def _first(
        self,
        call: Callable[[RegistrySource], T],
        *,
        mirrors: bool,
        what: str,
        accept: Callable[[T], bool] = lambda _: True,
    ) -> tuple[T, str]:
        """Return ``call``'s answer from the first live mirror that has ``what`` (if ``mirrors``),
        else from the origin, with the name of the repository that answered."""
        for mirror in self.mirrors if mirrors else ():
            name = _name(mirror)
            if name in self._dropped:
                continue
            try:
                answer = call(mirror)
            except VenvshipError as exc:
                if isinstance(exc, RegistryError) and exc.status == 404:
                    logger.debug("mirror %s has no %s", name, what)
                    continue
                self._drop(name, exc)
                continue
            if accept(answer):
                return answer, name
        return call(self.origin), _name(self.origin)

    def _drop(self, name: str, exc: VenvshipError) -> None:
        with self._lock:
            if name in self._dropped:
                return
            self._dropped.add(name)
        logger.warning("mirror %s left out for this run: %s", name, exc)
