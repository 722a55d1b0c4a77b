"""Artifact references: ``oci:DIR[:NAME[:TAG|@DIGEST]]``, ``oci+https://HOST[:PORT]/PATH[:NAME[:TAG|@DIGEST]]``
(a layout on a web server) and ``HOST[:PORT]/REPO[:TAG|@DIGEST]``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import BadReference

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
# A served layout's URL: a DNS name or IPv4 address, an IPv6 address, and path segments of RFC
# 3986's unreserved and sub-delimiter characters (no %-escape: a second spelling of a segment).
_HOST = re.compile(r"[a-z0-9]([a-z0-9_.-]*[a-z0-9])?")
_IPV6 = re.compile(r"[0-9a-f:.]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=-]+")


def is_ref_name(text: str) -> bool:
    """Return True if ``text`` is a ref name ``NAME:TAG`` a reference can name (a layout's
    ``index.json`` may hold any string there: a line break, a terminal escape).

    Example: ``is_ref_name("demo:1.0") and not is_ref_name("demo:1.0\\n")``
    """
    name, sep, tag = text.rpartition(":")
    return bool(sep and _NAME.fullmatch(name) and _TAG.fullmatch(tag))


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


@dataclass(frozen=True)
class HttpLayoutRef:
    """An OCI image layout served by a web server under ``url`` (``http(s)://HOST[:PORT][/PATH]``,
    no trailing slash), optionally one ref name (``NAME:TAG``) or digest in it."""

    url: str
    name: str | None = None
    tag: str | None = None
    digest: str | None = None

    @property
    def ref_name(self) -> str | None:
        return f"{self.name}:{self.tag}" if self.name and self.tag else None

    @property
    def host(self) -> str:
        """Return ``HOST[:PORT]`` as the URL names it."""
        return self.url.split("://", 1)[1].partition("/")[0]

    def with_target(self, *, name: str, tag: str | None = None, digest: str | None = None) -> HttpLayoutRef:
        return HttpLayoutRef(url=self.url, name=name, tag=tag, digest=digest)

    def __str__(self) -> str:
        scheme, _, rest = self.url.partition("://")
        text = f"oci+{scheme}://{rest if '/' in rest else rest + '/'}"
        if self.name:
            text += f":{self.name}"
            text += f"@{self.digest}" if self.digest else (f":{self.tag}" if self.tag else "")
        return text


Ref = Union[LayoutRef, HttpLayoutRef, RegistryRef]


def _split_target(text: str, original: str) -> tuple[str, str | None, str | None]:
    """Split ``NAME[:TAG|@DIGEST]`` into its parts, validating each."""
    digest = tag = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise BadReference(f"{original}: bad digest {digest!r} (expected sha256:<64 hex>)")
    else:
        last = text.rsplit("/", 1)[-1]
        if ":" in last:
            text, tag = text.rsplit(":", 1)
            if not _TAG.fullmatch(tag):
                raise BadReference(f"{original}: bad tag {tag!r}")
    if text and not _NAME.fullmatch(text):
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
    if text.startswith(("oci+http://", "oci+https://")):
        return _parse_http_layout(text)
    scheme, sep, bare = text.partition("://")
    if sep and scheme in ("http", "https"):
        # A URL's scheme is a transport choice, which the options make: say which one.
        plain = " and --insecure (plain HTTP)" if scheme == "http" else ""
        raise BadReference(f"{text}: a reference has no scheme: use {bare}{plain}")
    host, slash, rest = text.partition("/")
    if not slash or not (("." in host or ":" in host) or host == "localhost"):
        raise BadReference(
            f"{text}: not a reference; use oci:DIR[:NAME:TAG], oci+https://HOST/PATH[:NAME:TAG] "
            "or HOST[:PORT]/REPO[:TAG|@DIGEST]"
        )
    repo, tag, digest = _split_target(rest, text)
    return RegistryRef(registry=host, repository=repo, tag=tag, digest=digest)


def _parse_http_layout(text: str) -> HttpLayoutRef:
    """Parse ``oci+http(s)://HOST[:PORT]/[PATH][:NAME[:TAG|@DIGEST]]``: as ``oci:DIR``, the first
    ``:`` after the host's ``/`` ends the layout's path (a path with a colon cannot be named).

    The URL is kept in one spelling per layout (host in lowercase, no default port, a path of
    plain segments): a policy scope matches that text, and a web server resolves ``..``, ``.``,
    ``//`` and %-escapes, so another spelling of a path would read one layout under another's rule.
    """
    scheme, _, rest = text[4:].partition("://")
    netloc, slash, path_target = rest.partition("/")
    if not slash:
        raise BadReference(f"{text}: name the layout's path, e.g. {text}/PATH:NAME:TAG (/ for the web root)")
    # No login in the URL (it would land in logs and state), no query or fragment (not a layout's path).
    if not netloc or any(c in netloc for c in "@?#") or any(c in path_target for c in "?#"):
        raise BadReference(
            f"{text}: the URL must be http(s)://HOST[:PORT]/PATH, without login, query or fragment"
        )
    path, _, target = path_target.partition(":")
    url = f"{scheme}://{_origin(netloc, scheme, text)}"
    segments = path[:-1].split("/") if path.endswith("/") else path.split("/")
    if path and path != "/":
        if any(seg in ("", ".", "..") or not _SEGMENT.fullmatch(seg) for seg in segments):
            raise BadReference(
                f"{text}: the URL's path {'/' + path!r} must be plain segments: no '.', '..', empty "
                "segment or %-escape"
            )
        url += "/" + "/".join(segments)
    if not target:
        return HttpLayoutRef(url=url)
    name, tag, digest = _split_target(target, text)
    if not name:
        raise BadReference(f"{text}: missing name")
    return HttpLayoutRef(url=url, name=name, tag=tag, digest=digest)


def _origin(netloc: str, scheme: str, text: str) -> str:
    """Return ``HOST[:PORT]`` of ``netloc`` in its one spelling: lowercase, without the default port."""
    bad = BadReference(f"{text}: {netloc!r} is not HOST[:PORT] (a DNS name, an IPv4 or a [IPv6] address)")
    host, port = netloc.lower(), ""
    if host.startswith("["):
        host, _, after = host[1:].partition("]")
        if not _IPV6.fullmatch(host) or (after and not after.startswith(":")):
            raise bad
        port, host = after[1:], f"[{host}]"
    elif ":" in host:
        host, _, port = host.partition(":")
    if not (host.startswith("[") or _HOST.fullmatch(host)) or (port and not port.isdigit()):
        raise bad
    if port and not 0 < int(port) < 65536:
        raise bad
    default = "443" if scheme == "https" else "80"
    return host if not port or port.lstrip("0") == default else f"{host}:{int(port)}"
