"""Artifact references: ``oci:DIR[:NAME[:TAG|@DIGEST]]`` and ``HOST[:PORT]/REPO[:TAG|@DIGEST]``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import BadReference

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class LayoutRef:
    """An OCI image layout directory, optionally one ref name (``NAME:TAG``) or digest in it."""

    path: Path
    name: str | None = None
    tag: str | None = None
    digest: str | None = None

    @property
    def ref_name(self) -> str | None:
        return f"{self.name}:{self.tag}" if self.name and self.tag else None

    def with_target(self, *, name: str, tag: str | None = None, digest: str | None = None) -> LayoutRef:
        return LayoutRef(path=self.path, name=name, tag=tag, digest=digest)

    def __str__(self) -> str:
        text = f"oci:{self.path}"
        if self.name:
            text += f":{self.name}"
            text += f"@{self.digest}" if self.digest else (f":{self.tag}" if self.tag else "")
        return text


@dataclass(frozen=True)
class RegistryRef:
    """A repository in a registry, optionally with a tag or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def with_target(self, *, name: str, tag: str | None = None, digest: str | None = None) -> RegistryRef:
        """Return the reference to repository ``<self.repository>/<name>`` (self is a namespace)."""
        repo = f"{self.repository}/{name}" if self.repository else name
        return RegistryRef(registry=self.registry, repository=repo, tag=tag, digest=digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        return text + (f"@{self.digest}" if self.digest else (f":{self.tag}" if self.tag else ""))


Ref = Union[LayoutRef, RegistryRef]


def _split_target(text: str, original: str) -> tuple[str, str | None, str | None]:
    """Split ``NAME[:TAG|@DIGEST]`` into its parts, validating each."""
    digest = tag = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise BadReference(f"{original}: bad digest {digest!r} (expected sha256:<64 hex>)")
    else:
        last = text.rsplit("/", 1)[-1]
        if ":" in last:
            text, tag = text.rsplit(":", 1)
            if not _TAG.match(tag):
                raise BadReference(f"{original}: bad tag {tag!r}")
    if text and not _NAME.match(text):
        raise BadReference(f"{original}: bad repository name {text!r} (lowercase letters, digits, . _ -)")
    return text, tag, digest


def parse_ref(text: str) -> Ref:
    """Parse a reference; raise BadReference naming it when it is malformed.

    Example: ``parse_ref("oci:build/oci:demo:1.0")`` → ``LayoutRef(path=build/oci, name="demo", tag="1.0")``
    """
    if not text:
        raise BadReference("empty reference")
    if text.startswith("oci:"):
        rest = text[4:]
        path, _, target = rest.partition(":")
        if not path:
            raise BadReference(f"{text}: missing directory after 'oci:'")
        if not target:
            return LayoutRef(path=Path(path))
        name, tag, digest = _split_target(target, text)
        if not name:
            raise BadReference(f"{text}: missing name")
        return LayoutRef(path=Path(path), name=name, tag=tag, digest=digest)
    scheme, sep, bare = text.partition("://")
    if sep and scheme in ("http", "https"):
        # A URL's scheme is a transport choice, which the options make: say which one.
        plain = " and --insecure (plain HTTP)" if scheme == "http" else ""
        raise BadReference(f"{text}: a reference has no scheme: use {bare}{plain}")
    host, slash, rest = text.partition("/")
    if not slash or not (("." in host or ":" in host) or host == "localhost"):
        raise BadReference(
            f"{text}: not a reference; use oci:DIR[:NAME:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST]"
        )
    repo, tag, digest = _split_target(rest, text)
    return RegistryRef(registry=host, repository=repo, tag=tag, digest=digest)
