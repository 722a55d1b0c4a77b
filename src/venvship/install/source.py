"""Open the :class:`~venvship.oci.source.Source` behind a reference (layout directory or registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InstallError
from ..oci.reference import LayoutRef, Ref
from ..oci.source import LayoutSource, Source

if TYPE_CHECKING:
    from ..oci.auth import Credentials


def open_source(
    ref: Ref,
    *,
    insecure: bool = False,
    ca_file: str | None = None,
    credentials: Credentials | None = None,
) -> Source:
    """Return a Source reading ``ref``; ``credentials`` (else the stored ones) go to a registry.

    Example: ``open_source(parse_ref("oci:build/oci:demo:1.0"))``
    """
    if isinstance(ref, LayoutRef):
        return LayoutSource(ref)
    try:
        # Imported lazily: the registry client is a separate module, and a layout-only install
        # (or a zipapp built without it) must not depend on it.
        from ..oci.registry import RegistrySource  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise InstallError(f"{ref}: registry references are not supported yet") from exc
    source: Source = RegistrySource(ref, insecure=insecure, ca_file=ca_file, credentials=credentials)
    return source
