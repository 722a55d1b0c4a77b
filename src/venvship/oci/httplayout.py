"""OCI image layouts on a web server: tags from ``index.json``, blobs at ``blobs/sha256/<hex>``.

Any static web server serves such a layout (``venvship publish`` or ``build --output oci:DIR``
writes it under the web root), and since a blob's URL names its content, any HTTP cache or CDN
in front of it serves blobs too. Nothing the server says is trusted: ``index.json`` is read under
the on-disk layout's rules and a manifest's size limit, manifests under the registry's, and every manifest and
blob is checked against its digest and size before use. Requests go through the registry
client's plumbing (deadlines, bounded retries of transient failures, redirects that never
downgrade to plain HTTP and carry no login to another origin). No credentials are sent but those
given for this host on the command line, only to its own origin, and only as HTTP Basic (a Bearer
challenge would name a token server to send it to). Stdlib only.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Iterable

from ..artifact.documents import Descriptor, media_type_of, sha256_digest
from ..errors import ArtifactError, BadReference, RegistryError
from ._connection import Connection, expect
from ._http import Response, shown
from ._ingest import ingest_answer
from ._retry import RetryPolicy, retrying
from .auth import Credentials
from .layout import Layout, index_entries, named_refs, resolve_ref
from .reference import HttpLayoutRef
from .referrers import parse_list, referrers_tag
from .registry import MAX_MANIFEST

if TYPE_CHECKING:
    from .source import Access

# A served index.json is read whole and parsed: a parser makes a 64-byte dict of every "{}," it
# holds, so the 64 MiB a layout directory's may hold would be over a GiB of root's memory on
# every host. A manifest's limit keeps that near 100 MiB, and still names some 10,000 refs.
MAX_SERVED_INDEX = MAX_MANIFEST


def _no_stored_login(host: str) -> Credentials | None:
    """A web server is not a registry: its host's ``docker login`` is not meant for it."""
    return None


class HttpLayout:
    """The layout served under ``ref.url``; ``index.json`` is read once per object.

    Example: ``HttpLayout(parse_ref("oci+https://repo:8181/venvs"), access=Access()).refs()``
    """

    def __init__(self, ref: HttpLayoutRef, *, access: Access, timeout: float = 30, retries: int = 4) -> None:
        scheme = ref.url.partition("://")[0]
        if scheme == "http" and not access.insecure:
            # Blobs are checked by digest either way, but over plain HTTP anyone on the path can
            # change which digest a tag names (a signature policy still catches that).
            raise BadReference(
                f"{ref}: plain HTTP; pass --insecure to allow it, or serve the layout over HTTPS"
            )
        self.url = ref.url
        host = ref.host
        mine = access.credentials_for is None or access.credentials_for.lower() == host.lower()
        self.policy = RetryPolicy(retries=retries)
        # insecure only for an http:// layout: an https:// one never follows a redirect to HTTP.
        self._conn = Connection(
            host,
            insecure=scheme == "http",
            ca_file=access.ca_file,
            credentials=access.credentials if mine else None,
            timeout=timeout,
            policy=self.policy,
            lookup=_no_stored_login,
            # HTTP Basic only, answered on this origin: no token realm gets the login (the server
            # names its URL) and no request goes where a challenge says.
            basic_only=True,
        )
        self._login = access.credentials is not None and mine
        self._lock = threading.Lock()
        self._entries: list[Descriptor] | None = None

    def _get(self, tail: str, what: str) -> Response:
        """Return the open 200 answer for ``url/tail``; a 401 in a web server's words."""
        url = f"{self.url}/{tail}"
        try:
            resp = self._conn.open("GET", url, scopes=())
        except RegistryError as exc:
            if exc.status != 401:
                raise
            why = (
                "refused the login given (401; it goes as HTTP Basic only)"
                if self._login
                else "asks for a login; venvship sends one only when given (--username with "
                "--password-stdin) (401)"
            )
            raise RegistryError(
                f"{shown(url)}: the web server {why}",
                status=401,
                url=url,
            ) from None
        try:
            expect(resp, (200,), self.url, what)
        except BaseException:
            resp.close()
            raise
        return resp

    def entries(self) -> list[Descriptor]:
        """Return the descriptors of the served ``index.json``, fetched on first use."""
        with self._lock:
            if self._entries is None:

                def attempt() -> bytes:
                    with self._get("index.json", "index.json") as resp:
                        return _read(resp, MAX_SERVED_INDEX, f"{self.url}/index.json")

                try:
                    raw = retrying(attempt, policy=self.policy, what=f"{self.url}: get index.json")
                except RegistryError as exc:
                    if exc.status == 404:
                        raise ArtifactError(f"{self.url}: not an OCI image layout (no index.json)") from exc
                    raise
                self._entries = index_entries(raw, where=f"{self.url}/index.json")
            return self._entries

    def refs(self) -> dict[str, Descriptor]:
        """Return the named refs (``NAME:TAG`` → descriptor)."""
        return named_refs(self.entries())

    def resolve(self, ref_name: str) -> Descriptor:
        """Return the descriptor tagged ``ref_name``; raise ArtifactError listing what exists."""
        return resolve_ref(self.refs(), ref_name, where=self.url)

    def read_blob(self, digest: str, *, size: int | None = None, max_size: int = MAX_MANIFEST) -> bytes:
        """Return a small blob's bytes (a manifest, index or config), checked against ``digest``
        (and ``size`` when known)."""
        tail = _blob_tail(digest)

        def attempt() -> bytes:
            with self._get(tail, f"blob {digest}") as resp:
                return _read(resp, max_size if size is None else min(size, max_size), f"{self.url}@{digest}")

        data = retrying(attempt, policy=self.policy, what=f"{self.url}: get {digest}")
        if sha256_digest(data) != digest or (size is not None and len(data) != size):
            raise ArtifactError(f"{self.url}: blob {digest} is corrupt (digest or size mismatch)")
        return data

    def fetch_blob(self, digest: str, size: int, dest: Layout) -> bool:
        """Stream blob ``digest`` into ``dest`` (verified while streaming); False if it was there."""
        if dest.has_blob(digest, size):
            return False
        tail = _blob_tail(digest)

        def attempt() -> bool:
            with self._get(tail, f"blob {digest}") as resp:
                return ingest_answer(resp, digest=digest, size=size, dest=dest, what=f"{self.url}@{digest}")

        return retrying(attempt, policy=self.policy, what=f"{self.url}: fetch {digest}")


def _read(resp: Response, limit: int, what: str) -> bytes:
    """Return the whole body of ``resp``; raise ArtifactError naming ``what`` past ``limit`` bytes."""
    try:
        return resp.read_limited(limit)
    except RegistryError as exc:  # the one it raises: too long (a broken read is Transient)
        raise ArtifactError(f"{what}: larger than {limit} bytes") from exc


def _blob_tail(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ArtifactError(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hexpart}"


class HttpLayoutSource:
    """A :class:`~venvship.oci.source.Source` (and a read-only store) over one name of a served layout.

    Example: ``HttpLayoutSource(parse_ref("oci+https://repo/venvs:demo:1.0"), access=Access())``
    """

    def __init__(self, ref: HttpLayoutRef, *, access: Access) -> None:
        if not ref.name:
            raise ArtifactError(f"{ref}: name the artifact, e.g. {ref}:NAME:TAG")
        self.ref = ref
        self.layout = HttpLayout(ref, access=access)
        self.where = str(HttpLayoutRef(url=ref.url, name=ref.name))
        self.identity = ref.name  # as a layout names it in a signature payload

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        if reference.startswith("sha256:"):
            known = next((d for d in self.layout.entries() if d.digest == reference), None)
            raw = self.layout.read_blob(reference, size=known.size if known else None)
            desc = known or Descriptor(media_type=media_type_of(raw), digest=reference, size=len(raw))
            return desc, raw
        desc = self.layout.resolve(f"{self.ref.name}:{reference}")
        return desc, self.layout.read_blob(desc.digest, size=desc.size)

    def fetch_blob(self, digest: str, size: int, cache: Layout) -> bool:
        return self.layout.fetch_blob(digest, size, cache)

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        # As in a layout directory: the list is the tag NAME:sha256-<hex> of index.json.
        desc = self.layout.refs().get(f"{self.ref.name}:{referrers_tag(digest)}")
        if desc is None:
            return ()
        raw = self.layout.read_blob(desc.digest, size=desc.size)
        return parse_list(raw, where=f"{self.where} referrers of {digest}")

    def blob(self, desc: Descriptor) -> bytes:
        """Return a small blob's verified bytes (a signature payload, an SBOM)."""
        return self.layout.read_blob(desc.digest, size=desc.size, max_size=16 << 20)

    def attach(self, manifest_raw: bytes, blobs: Iterable[bytes]) -> bool:
        raise ArtifactError(
            f"{self.where}: a layout on a web server is read-only here; sign or attach where it is "
            "written (oci:DIR), then copy it to the server"
        )
