"""Where artifacts come from: an OCI layout directory, one on a web server, or a registry, behind
one small Protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..artifact.documents import Descriptor, sha256_digest
from ..errors import ArtifactError
from .layout import Layout
from .reference import HttpLayoutRef, LayoutRef, Ref
from .referrers import parse_list, referrers_tag

if TYPE_CHECKING:
    from .auth import Credentials
    from .registry import RegistryClient


@dataclass(frozen=True)
class Access:
    """How to reach a registry: plain HTTP allowed, a CA bundle, credentials (else the stored ones)."""

    insecure: bool = False
    ca_file: str | None = None
    credentials: Credentials | None = None
    # The one registry (host[:port]) the explicit credentials are for (None: any the caller opens);
    # every other registry gets its own stored login, never these.
    credentials_for: str | None = None
    # Hosts other than the registry's own whose token realm may receive credentials.
    token_realm_hosts: tuple[str, ...] = ()


class Source(Protocol):
    """Read side of an artifact store, as the installer and ``publish`` use it."""

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        """Return the descriptor and exact bytes of the manifest or index at ``reference``.

        ``reference`` is a tag or a ``sha256:`` digest; bytes are verified against the digest.
        """
        ...

    def fetch_blob(self, digest: str, size: int, cache: Layout) -> bool:
        """Stream blob ``digest`` into ``cache`` (verified while streaming); False if it was there."""
        ...

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        """Return the entries of the referrers list of ``digest`` (signatures, SBOMs, …); () if none."""
        ...


class LayoutSource:
    """A :class:`Source` over one repository name of an OCI image layout directory."""

    def __init__(self, ref: LayoutRef) -> None:
        if not ref.name:
            raise ArtifactError(f"{ref}: name the artifact, e.g. oci:DIR:NAME:TAG")
        self.ref = ref
        self.layout = Layout.open(ref.path)

    def get_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        if reference.startswith("sha256:"):
            desc = self.layout.find_digest(reference)
        else:
            desc = self.layout.resolve(f"{self.ref.name}:{reference}")
        raw = self.layout.read_blob(desc.digest)
        if sha256_digest(raw) != desc.digest:
            raise ArtifactError(f"{self.ref}: manifest {desc.digest} is corrupt")
        return desc, raw

    def fetch_blob(self, digest: str, size: int, cache: Layout) -> bool:
        if cache.has_blob(digest, size):
            return False
        with self.layout.open_blob(digest) as fh:
            return cache.ingest(fh, digest=digest, size=size, what=f"{self.ref.path} blob {digest}")

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        # A layout has no referrers API: the list is the tag NAME:sha256-<hex>, as on a registry
        # without one, so a layout copied by skopeo or oras carries its referrers the same way.
        desc = self.layout.refs().get(f"{self.ref.name}:{referrers_tag(digest)}")
        if desc is None:
            return ()
        return parse_list(self.layout.read_blob(desc.digest), where=f"{self.ref} referrers of {digest}")


def open_source(ref: Ref, access: Access | None = None) -> Source:
    """Return the :class:`Source` for a layout, served layout or registry reference.

    Example: ``open_source(parse_ref("oci:build/oci:demo:1.0"))``
    """
    if isinstance(ref, LayoutRef):
        return LayoutSource(ref)
    if isinstance(ref, HttpLayoutRef):
        from .httplayout import HttpLayoutSource  # the HTTP client is only loaded when a URL is named

        return HttpLayoutSource(ref, access=access or Access())
    from .registry import RegistrySource  # the HTTP client is only loaded when a registry is named

    return RegistrySource(ref, client=registry_client(ref.registry, access or Access()))


def registry_client(registry: str, access: Access) -> RegistryClient:
    """Return a client for ``registry`` reached as ``access`` says.

    Example: ``registry_client("ghcr.io", Access(ca_file="/etc/ssl/my-ca.pem"))``
    """
    from .registry import RegistryClient

    mine = access.credentials_for is None or access.credentials_for.lower() == registry.lower()
    return RegistryClient(
        registry,
        insecure=access.insecure,
        ca_file=access.ca_file,
        credentials=access.credentials if mine else None,
        token_realm_hosts=access.token_realm_hosts,
    )
