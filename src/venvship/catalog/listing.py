"""``venvship list``: the refs of an OCI layout (a directory or served), or the tags of a registry
repository."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadReference
from ..oci.layout import Layout
from ..oci.reference import HttpLayoutRef, LayoutRef, Ref, is_ref_name
from ..oci.referrers import is_referrers_tag
from ..oci.source import Access, registry_client


@dataclass(frozen=True)
class Listed:
    """One reference found: usable as is with ``inspect`` or ``install``; its digest where known."""

    ref: str
    digest: str | None

    def to_json(self) -> dict[str, object]:
        return {"ref": self.ref, "digest": self.digest}


def list_refs(ref: Ref, access: Access | None = None) -> list[Listed]:
    """Return the refs of the layout ``oci:DIR`` (or of one name, ``oci:DIR:NAME``), or the tags of
    the registry repository ``HOST/REPO`` (no digests: that would cost a request per tag), sorted.
    Referrers lists kept under ``sha256-<hex>`` tags are not artifacts: they are left out, as are
    ref names that are not ``NAME:TAG``.

    Example: ``[x.ref for x in list_refs(parse_ref("oci:build/oci"))]`` → ``["oci:build/oci:demo:1.0", …]``
    """
    if ref.tag or ref.digest:
        raise BadReference(f"{ref}: name a layout or a repository to list, not a tag or digest")
    if isinstance(ref, (LayoutRef, HttpLayoutRef)):
        if isinstance(ref, LayoutRef):
            found, base = Layout.open(ref.path).refs(), f"oci:{ref.path}"
        else:
            from ..oci.httplayout import HttpLayout

            found, base = HttpLayout(ref, access=access or Access()).refs(), str(HttpLayoutRef(url=ref.url))
        listed = [
            Listed(ref=f"{base}:{name}", digest=desc.digest)
            for name, desc in sorted(found.items())
            # A name no reference can name cannot be installed; it may hold a terminal escape.
            if is_ref_name(name)
            and (ref.name is None or name.rpartition(":")[0] == ref.name)
            and not is_referrers_tag(name.rpartition(":")[2])
        ]
        if ref.name is not None and not listed:
            raise BadReference(
                f"{ref}: the layout has no artifact {ref.name!r}; `venvship list {base}` lists all"
            )
        return listed
    if not ref.repository:
        raise BadReference(f"{ref}: name the repository, HOST[:PORT]/REPO")
    tags = registry_client(ref.registry, access or Access()).list_tags(ref.repository)
    listed = [Listed(ref=f"{ref}:{tag}", digest=None) for tag in sorted(tags) if not is_referrers_tag(tag)]
    if not listed:
        # A namespace or a mistyped name answers like an empty repository: nothing found is an error.
        raise BadReference(
            f"{ref}: no such repository, or it has no tags; name one artifact's repository, "
            "HOST[:PORT]/NAMESPACE/NAME"
        )
    return listed
