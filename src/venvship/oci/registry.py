"""A distribution-spec (OCI registry) client on the standard library, for both sides.

Streams blobs both ways (memory does not grow with blob size), verifies every digest, skips blobs
the registry has, mounts across repositories, speaks Basic and per-scope Bearer auth, retries
transient failures a bounded number of times, and is safe to share between threads.
"""

from __future__ import annotations

import re
from typing import Literal, Sequence
from urllib.parse import quote, urljoin

from ..artifact.documents import INDEX_TYPE, MANIFEST_TYPE, Descriptor, media_type_of, sha256_digest
from ..errors import ArtifactError, RegistryError
from ._connection import Connection, expect, upload_location
from ._http import BlobSource, open_body, parse_tags, rewinder, tell
from ._ingest import ingest_answer
from ._retry import RetryPolicy, retrying
from ._session import Scopes, repo_scopes
from .auth import Credentials
from .layout import Layout
from .reference import RegistryRef
from .referrers import parse_list, referrers_tag

PushOutcome = Literal["exists", "mounted", "uploaded"]

DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([MANIFEST_TYPE, INDEX_TYPE, DOCKER_MANIFEST_TYPE, DOCKER_LIST_TYPE])
MAX_MANIFEST = 4 << 20
MAX_WORKERS = 4

_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryClient:
    """A client for one registry (``host[:port]``); every method names the repository.

    ``credentials=None`` means: look them up (Docker/podman config) when the registry asks.
    ``token_realm_hosts``: other hosts whose Bearer token realm may receive the credentials (the
    registry's own host always may).

    Example: ``RegistryClient("ghcr.io").get_manifest("org/keystone", "31.0.0")``
    """

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        ca_file: str | None = None,
        credentials: Credentials | None = None,
        token_realm_hosts: Sequence[str] = (),
        timeout: float = 30,
        connect_timeout: float | None = None,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        retry_unreachable: bool = True,
    ) -> None:
        self.registry = registry
        self.policy = RetryPolicy(
            retries=retries, backoff=backoff, max_backoff=max_backoff, unreachable=retry_unreachable
        )
        # Whether the registry answers the referrers API: None until asked once, then remembered,
        # so a registry without it costs one 404 per client, not one per digest.
        self.referrers_api: bool | None = None
        self._conn = Connection(
            registry,
            insecure=insecure,
            ca_file=ca_file,
            credentials=credentials,
            token_realm_hosts=token_realm_hosts,
            timeout=timeout,
            policy=self.policy,
            connect_timeout=connect_timeout,
        )

    # -- blobs -----------------------------------------------------------------------------------

    def head_blob(self, repo: str, digest: str) -> int | None:
        """Return the size of blob ``digest`` in ``repo``, or None if the registry lacks it."""
        return self._head_blob(repo, digest, repo_scopes(repo))

    def push_blob(
        self, repo: str, source: BlobSource, digest: str, size: int, *, mount_from: str | None = None
    ) -> bool:
        """Make blob ``digest`` present in ``repo``; return False if it was there already.

        Example: ``client.push_blob("ns/demo", Path("x.whl"), "sha256:…", 1234)``
        """
        return self.upload_blob(repo, source, digest, size, mount_from=mount_from) != "exists"

    def upload_blob(
        self, repo: str, source: BlobSource, digest: str, size: int, *, mount_from: str | None = None
    ) -> PushOutcome:
        """Like :meth:`push_blob`, but say how: ``exists``, ``mounted`` or ``uploaded``."""
        scopes = repo_scopes(repo, push=True, mount_from=[mount_from] if mount_from else [])
        where = self._conn.where(repo)
        if self._head_blob(repo, digest, scopes) is not None:
            return "exists"
        start = tell(source)
        tries = [0]

        def attempt() -> PushOutcome:
            tries[0] += 1
            location = None
            if mount_from:
                query = f"?mount={quote(digest)}&from={quote(mount_from)}"
                with self._conn.open(
                    "POST", self._conn.url(repo, "blobs/uploads/" + query), scopes=scopes
                ) as resp:
                    if resp.status == 201:
                        return "mounted"
                    expect(resp, (202,), where, f"mount of {digest} from {mount_from}")
                    location = upload_location(resp, where)
            if location is None:
                with self._conn.open("POST", self._conn.url(repo, "blobs/uploads/"), scopes=scopes) as resp:
                    expect(resp, (202,), where, "starting an upload")
                    location = upload_location(resp, where)
            put_url = location + ("&" if "?" in location else "?") + "digest=" + quote(digest)
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            with open_body(source, start, retry=tries[0] > 1, where=where) as body:
                opener = rewinder(body, start)
                with self._conn.open("PUT", put_url, scopes=scopes, headers=headers, body=opener) as resp:
                    expect(resp, (201, 204), where, f"upload of {digest}")
                    got = resp.header("Docker-Content-Digest")
            if got and got != digest:
                raise RegistryError(f"{where}: registry stored {got} for {digest}", url=put_url)
            return "uploaded"

        return retrying(attempt, policy=self.policy, what=f"{where}: push {digest}")

    def fetch_blob(self, repo: str, digest: str, size: int, dest_layout: Layout) -> bool:
        """Stream blob ``digest`` into ``dest_layout`` (verified while streaming); False if present."""
        if dest_layout.has_blob(digest, size):
            return False
        where = self._conn.where(repo)

        def attempt() -> bool:
            with self._conn.open(
                "GET", self._conn.url(repo, f"blobs/{digest}"), scopes=repo_scopes(repo)
            ) as resp:
                expect(resp, (200,), where, f"blob {digest}")
                return ingest_answer(
                    resp, digest=digest, size=size, dest=dest_layout, what=f"{where}@{digest}"
                )

        return retrying(attempt, policy=self.policy, what=f"{where}: fetch {digest}")

    def get_blob_bytes(self, repo: str, digest: str, *, max_size: int = 16 << 20) -> bytes:
        """Return a small blob (a config) in memory, verified against ``digest``."""
        where = self._conn.where(repo)

        def attempt() -> bytes:
            with self._conn.open(
                "GET", self._conn.url(repo, f"blobs/{digest}"), scopes=repo_scopes(repo)
            ) as resp:
                expect(resp, (200,), where, f"blob {digest}")
                return resp.read_limited(max_size)

        data = retrying(attempt, policy=self.policy, what=f"{where}: fetch {digest}")
        if sha256_digest(data) != digest:
            raise ArtifactError(f"{where}: blob {digest} is corrupt (digest mismatch)")
        return data

    def _head_blob(self, repo: str, digest: str, scopes: Scopes) -> int | None:
        where = self._conn.where(repo)

        def attempt() -> int | None:
            with self._conn.open("HEAD", self._conn.url(repo, f"blobs/{digest}"), scopes=scopes) as resp:
                if resp.status == 404:
                    return None
                expect(resp, (200,), where, f"blob {digest}")
                length = resp.header("Content-Length")
                return int(length) if length and length.isdigit() else 0

        return retrying(attempt, policy=self.policy, what=f"{where}: check {digest}")

    # -- manifests and tags ----------------------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        """Store ``raw`` (exact bytes) as a manifest or index at a tag or digest; return its digest."""
        return self._put_manifest(repo, reference, raw, media_type)[0]

    def put_referrer(self, repo: str, raw: bytes) -> bool:
        """Store the referrer manifest ``raw`` by digest; return True if the registry keeps its
        referrers list itself (it answered ``OCI-Subject``), False if the client must keep the
        ``sha256-<hex>`` tag (distribution spec, "Pushing Manifests with Subject")."""
        digest = sha256_digest(raw)
        return self._put_manifest(repo, digest, raw, MANIFEST_TYPE)[1] is not None

    def _put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> tuple[str, str | None]:
        digest = sha256_digest(raw)
        where = self._conn.where(repo)
        url = self._conn.url(repo, f"manifests/{reference}")

        def attempt() -> tuple[str | None, str | None]:
            headers = {"Content-Type": media_type, "Content-Length": str(len(raw))}
            with self._conn.open(
                "PUT", url, scopes=repo_scopes(repo, push=True), headers=headers, body=lambda: raw
            ) as resp:
                expect(resp, (201, 200, 204), where, f"manifest {reference}")
                return resp.header("Docker-Content-Digest"), resp.header("OCI-Subject")

        got, subject = retrying(attempt, policy=self.policy, what=f"{where}: put manifest {reference}")
        if got and got != digest:
            raise RegistryError(f"{where}: registry reports digest {got} for manifest {digest}", url=url)
        return digest, subject

    def referrers(self, repo: str, digest: str) -> tuple[Descriptor, ...]:
        """Return the referrers list of ``digest`` in ``repo``: from the referrers API, or where it
        answers 404 from the ``sha256-<hex>`` tag (distribution spec); () if neither lists any.

        Example: ``client.referrers("venvs/demo", "sha256:…")``
        """
        where = f"{self._conn.where(repo)} referrers of {digest}"
        if self.referrers_api is not False:
            pages = self._referrers_pages(repo, digest, where)
            self.referrers_api = pages is not None
            if pages is not None:
                return tuple(e for page in pages for e in parse_list(page, where=where))
        raw = self.get_optional_manifest(repo, referrers_tag(digest))
        return () if raw is None else parse_list(raw, where=where)

    def _referrers_pages(self, repo: str, digest: str, where: str) -> list[bytes] | None:
        """Return the referrers API's pages for ``digest``, or None if the registry has no such API."""
        url: str | None = self._conn.url(repo, f"referrers/{digest}")
        pages: list[bytes] = []
        for _ in range(16):
            if url is None:
                return pages

            def attempt(page_url: str = url) -> tuple[bytes | None, str | None]:
                headers = {"Accept": INDEX_TYPE}
                with self._conn.open("GET", page_url, scopes=repo_scopes(repo), headers=headers) as resp:
                    # 404 is the spec's "no referrers API"; some registries answer so with these.
                    if resp.status in (400, 404, 405, 406, 501):
                        return None, None
                    expect(resp, (200,), where, "referrers list")
                    return resp.read_limited(MAX_MANIFEST), resp.header("Link")

            page, link = retrying(attempt, policy=self.policy, what=where)
            if page is None:
                return None
            pages.append(page)
            match = _NEXT_LINK.search(link or "")
            url = urljoin(url, match.group(1)) if match else None
        raise RegistryError(f"{where}: referrers pagination does not end", url=url or "")

    def get_optional_manifest(self, repo: str, reference: str) -> bytes | None:
        """Return the exact bytes of the manifest or index at ``reference``, or None if there is none."""
        try:
            return self.get_manifest(repo, reference)[1]
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise

    def get_manifest(self, repo: str, reference: str) -> tuple[str, bytes, str]:
        """Return (media type, exact bytes, digest) of the manifest or index at ``reference``."""
        where = self._conn.where(repo)

        def attempt() -> tuple[str | None, bytes, str | None]:
            url = self._conn.url(repo, f"manifests/{reference}")
            headers = {"Accept": MANIFEST_ACCEPT}
            with self._conn.open("GET", url, scopes=repo_scopes(repo), headers=headers) as resp:
                expect(resp, (200,), where, f"manifest {reference}")
                data = resp.read_limited(MAX_MANIFEST)
                return resp.header("Content-Type"), data, resp.header("Docker-Content-Digest")

        content_type, raw, header_digest = retrying(
            attempt, policy=self.policy, what=f"{where}: get {reference}"
        )
        digest = sha256_digest(raw)
        if reference.startswith("sha256:") and digest != reference:
            raise ArtifactError(f"{where}@{reference}: registry sent a manifest with digest {digest}")
        if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
            raise ArtifactError(
                f"{where}:{reference}: manifest bytes hash to {digest}, registry says {header_digest}"
            )
        media = (content_type or "").split(";")[0].strip()
        if media not in (MANIFEST_TYPE, INDEX_TYPE, DOCKER_MANIFEST_TYPE, DOCKER_LIST_TYPE):
            media = media_type_of(raw)
        return media, raw, digest

    def check_tag(self, repo: str, tag: str) -> str | None:
        """Return the digest ``tag`` points at (one HEAD request), or None if there is no such tag."""
        where = self._conn.where(repo)

        def attempt() -> tuple[bool, str | None]:
            url = self._conn.url(repo, f"manifests/{tag}")
            with self._conn.open(
                "HEAD", url, scopes=repo_scopes(repo), headers={"Accept": MANIFEST_ACCEPT}
            ) as resp:
                if resp.status == 404:
                    return False, None
                expect(resp, (200,), where, f"manifest {tag}")
                return True, resp.header("Docker-Content-Digest")

        found, digest = retrying(attempt, policy=self.policy, what=f"{where}: check {tag}")
        if found and not digest:
            digest = self.get_manifest(repo, tag)[2]
        return digest

    def list_tags(self, repo: str) -> list[str]:
        """Return every tag of ``repo`` (following ``Link`` pagination); [] for an unknown repository."""
        where = self._conn.where(repo)
        url: str | None = self._conn.url(repo, "tags/list?n=1000")
        tags: list[str] = []
        for _ in range(10_000):
            if url is None:
                return tags

            def attempt(page_url: str = url) -> tuple[list[str] | None, str | None]:
                with self._conn.open("GET", page_url, scopes=repo_scopes(repo)) as resp:
                    if resp.status == 404:
                        return None, None
                    expect(resp, (200,), where, "tag list")
                    return parse_tags(resp.read_limited(MAX_MANIFEST), where), resp.header("Link")

            page, link = retrying(attempt, policy=self.policy, what=f"{where}: list tags")
            if page is None:
                return tags
            tags.extend(page)
            match = _NEXT_LINK.search(link or "")
            url = urljoin(url, match.group(1)) if match else None
        raise RegistryError(f"{where}: tag list pagination does not end", url=url or "")


# -- parallel transfers ----------------------------------------------------------------------------


class RegistrySource:
    """A :class:`~venvship.oci.source.Source` over one registry repository.

    Example: ``RegistrySource(parse_ref("ghcr.io/org/keystone:31.0.0")).get_manifest("31.0.0")``
    """

    def __init__(self, ref: RegistryRef, *, client: RegistryClient) -> None:
        if not ref.repository:
            raise ArtifactError(f"{ref}: name the repository, e.g. HOST/REPO:TAG")
        self.ref = ref
        self.client = client

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        try:
            media_type, raw, digest = self.client.get_manifest(self.ref.repository, reference)
        except RegistryError as exc:
            if exc.status != 404 or reference.startswith("sha256:"):
                raise
            # A missing tag is most often an index tag not merged yet, or a typo: say what to run.
            name = f"{self.ref.registry}/{self.ref.repository}"
            raise RegistryError(
                f"{exc}; `venvship list {name}` lists its tags, and `venvship index {name}:VERSION` "
                "merges the platform tags VERSION-* into the index tag VERSION",
                status=404,
                url=exc.url,
            ) from exc
        return Descriptor(media_type=media_type, digest=digest, size=len(raw)), raw

    def fetch_blob(self, digest: str, size: int, cache: Layout) -> bool:
        return self.client.fetch_blob(self.ref.repository, digest, size, cache)

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        return self.client.referrers(self.ref.repository, digest)
