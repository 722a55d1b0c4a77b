"""The trust policy of a host: which keys must have signed an artifact before venv-pull installs it.

``/etc/venvship/policy.toml`` (or ``--policy FILE``)::

    [default]
    require-signature = false

    [[scope]]
    match = "registry.example.com/openstack"   # this repository and every one below it
    require-signature = true
    keys = ["/etc/venvship/keys/release-2026.pub", "/etc/venvship/keys/release-2027.pub"]

The most specific ``match`` wins (as in containers-policy.json); ``default`` applies elsewhere.
A layout is matched as ``oci:/ABSOLUTE/DIR:NAME``, one on a web server as
``oci+https://HOST[:PORT]/PATH:NAME`` (host in lowercase, no default port). Python 3.9 and 3.10 have no ``tomllib`` and
the target side imports nothing outside the stdlib, so the same document may be written as JSON
(``policy.json``, or any ``--policy`` file ending in ``.json``); a ``.toml`` policy on such a host
is an error, never ignored. Every mistake is one line naming the file and key. Stdlib only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..artifact.documents import tag_for_version
from ..artifact.sigformat import key_id, public_key_der
from ..errors import ArtifactError, BadReference, InstallError
from ..host import trust
from ..host.conffile import find_settings, read_settings
from ..oci.reference import HttpLayoutRef, LayoutRef, Ref, parse_ref

POLICY_DIR = Path("/etc/venvship")
DEFAULT_FILES = (POLICY_DIR / "policy.toml", POLICY_DIR / "policy.json")
_RULE_KEYS = ("require-signature", "keys")


@dataclass(frozen=True)
class TrustedKey:
    """A public key the policy trusts: its file and its id (sha256 of its DER)."""

    path: Path
    key_id: str


@dataclass(frozen=True)
class Rule:
    """What the policy asks of one reference: a signature by one of ``keys``, or nothing."""

    source: str  # "POLICY-FILE: scope MATCH" or "…: default": where the rule comes from
    require_signature: bool = False
    keys: tuple[TrustedKey, ...] = ()

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(k.key_id for k in self.keys)

    def expected(self) -> str:
        """Return what this rule expects, for a refusal line."""
        names = ", ".join(str(k.path) for k in self.keys)
        return f"a signature by {names}" if len(self.keys) == 1 else f"a signature by one of {names}"

    def satisfied_by(self, signers: Mapping[str, tuple[str, ...]], digests: tuple[str, ...]) -> bool:
        """Return True if every one of ``digests`` was verified before by a key this rule trusts."""
        if not self.require_signature:
            return True
        return all(self.key_ids & set(signers.get(d, ())) for d in digests)


NO_POLICY = Rule(source="no policy")


@dataclass(frozen=True)
class Policy:
    """A loaded policy: the default rule and the scoped ones, by ``match``."""

    path: Path | None
    default: Rule
    scopes: Mapping[str, Rule]

    def rule_for(self, ref: Ref) -> Rule:
        """Return the rule of the most specific scope that matches ``ref`` (else the default)."""
        name = scope_name(ref)
        best = ""
        for match in self.scopes:
            if _matches(name, match) and len(match) > len(best):
                best = match
        return self.scopes[best] if best else self.default


def scope_name(ref: Ref) -> str:
    """Return what scopes match ``ref`` against: ``HOST[:PORT]/REPO``, ``oci:/ABS/DIR:NAME`` or
    ``oci+https://HOST/PATH:NAME``."""
    if isinstance(ref, LayoutRef):
        return f"oci:{os.path.abspath(ref.path)}:{ref.name or ''}"
    if isinstance(ref, HttpLayoutRef):
        return f"{HttpLayoutRef(url=ref.url)}:{ref.name or ''}"
    return f"{ref.registry}/{ref.repository}"


def check_named(ref: Ref, name: str) -> None:
    """Raise InstallError unless ``name`` (the venv a signed config names) is the artifact ``ref``
    names: a layout's ``NAME``, a registry repository's last part (``NAMESPACE/NAME``).

    A signature vouches for a digest, not for the tag it is found under: a server (or a cache)
    that names another venv's index, signed by the same release key, passes the signature check.
    """
    named = ref.name if isinstance(ref, (LayoutRef, HttpLayoutRef)) else ref.repository.rpartition("/")[2]
    if named and name != named:
        raise InstallError(
            f"{ref}: names the artifact {named!r}, but the signed content it is served as is the "
            f"artifact {name!r}'s; refused (a tag moved to another artifact)"
        )


# A tag that reads as a PEP 440 release, as ``tag_for_version`` writes one ("+" as "_").
_RELEASE = re.compile(
    r"v?\d+(?:\.\d+)*(?:[._-]?(?:a|b|c|rc|alpha|beta|pre|preview|post|rev|r|dev)[._-]?\d*)*(?:_[a-z0-9._]+)?\Z",
    re.IGNORECASE,
)


def check_release(ref: Ref, version: str, platform_key: str) -> None:
    """Raise InstallError when ``ref``'s tag reads as a release (``1.0``, ``1.0-debian-12-amd64-cp311``)
    other than ``version``, the one the signed config names.

    The release key signed the older releases too: a server that moves ``demo:2.0`` to the
    signed ``demo:1.0`` would roll a host back to what 2.0 fixed. A tag that names no release
    (``stable``) is the operator's floating choice; a digest names exactly what it names.
    """
    tag = ref.tag
    if not tag or ref.digest:
        return
    base = tag[: -len(platform_key) - 1] if tag.endswith(f"-{platform_key}") else tag
    if base != tag_for_version(version) and _RELEASE.match(base):
        raise InstallError(
            f"{ref}: names release {base!r}, but the signed content it is served as is release "
            f"{version!r}'s; refused (a tag moved to another release)"
        )


def _matches(name: str, match: str) -> bool:
    """A scope matches itself and what lies below it (a path component, or a layout's name).

    Only a layout's scope (``oci:…``, ``oci+https://HOST/…``) is followed by ``:NAME``: after a
    registry's ``HOST``, a ``:`` starts a port, another server's (``reg.example:5000``).
    """
    below = name.startswith(match.rstrip("/") + "/")
    return name == match or below or (match.startswith("oci") and name.startswith(match + ":"))


def load_policy(path: Path | None) -> Policy:
    """Return the policy at ``path``, else the host's default one, else an empty one (nothing required).

    An explicit ``path`` must exist; so must every key file a policy names.

    Example: ``load_policy(None).rule_for(parse_ref("registry.example.com/venvs/demo:1.0"))``
    """
    path = find_settings(path, DEFAULT_FILES, what="the trust policy")
    if path is None:
        return Policy(path=None, default=NO_POLICY, scopes={})
    data = read_settings(path, what="the trust policy")
    where = str(path)
    unknown = sorted(set(data) - {"default", "scope"})
    if unknown:
        raise InstallError(f"{where}: unknown key {unknown[0]!r} (known: default, scope)")
    default = _rule(data.get("default", {}), where=where, at="default", base=path.parent)
    scopes: dict[str, Rule] = {}
    items = data.get("scope", [])
    if not isinstance(items, list):
        raise InstallError(f"{where}: scope: not a list of tables ([[scope]])")
    for i, item in enumerate(items):
        at = f"scope[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("match"), str) or not item["match"]:
            raise InstallError(f"{where}: {at}.match: missing or not a string")
        match = _scope_match(item["match"], where=f"{where}: {at}.match")
        if match in scopes:
            raise InstallError(f"{where}: {at}.match: {match!r} is matched twice")
        rest = {k: v for k, v in item.items() if k != "match"}
        scopes[match] = _rule(rest, where=where, at=f"{at} ({match})", base=path.parent)
    return Policy(path=path, default=default, scopes=scopes)


def _scope_match(match: str, *, where: str) -> str:
    """Return ``match`` as :func:`scope_name` spells what it covers: a web server's URL in its one
    spelling (``oci+https://Repo.example:443/os`` is ``oci+https://repo.example/os``), so that no
    spelling of a scope or of a reference leaves a layout outside it."""
    if not match.startswith(("oci+http://", "oci+https://")):
        return match
    # A scope may name a whole server: ``oci+https://HOST`` is its web root's ``oci+https://HOST/``.
    whole = "/" not in match.partition("://")[2]
    try:
        ref = parse_ref(match + "/" if whole else match)
    except BadReference as exc:
        raise InstallError(f"{where}: {exc}") from None
    if not isinstance(ref, HttpLayoutRef) or ref.tag or ref.digest:
        raise InstallError(
            f"{where}: {match!r}: a scope names oci+https://HOST/PATH[:NAME], no tag or digest"
        )
    return f"{HttpLayoutRef(url=ref.url)}" + (f":{ref.name}" if ref.name else "")


def _rule(table: Any, *, where: str, at: str, base: Path) -> Rule:
    if not isinstance(table, dict):
        raise InstallError(f"{where}: {at}: not a table")
    unknown = sorted(set(table) - set(_RULE_KEYS))
    if unknown:
        raise InstallError(f"{where}: {at}: unknown key {unknown[0]!r} (known: {', '.join(_RULE_KEYS)})")
    required = table.get("require-signature", False)
    if not isinstance(required, bool):
        raise InstallError(f"{where}: {at}.require-signature: not true or false")
    paths = table.get("keys", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise InstallError(f"{where}: {at}.keys: not a list of key file paths")
    if required and not paths:
        raise InstallError(f"{where}: {at}: requires a signature but names no key (keys = [...])")
    keys = tuple(_key(base / p, where=f"{where}: {at}.keys[{i}]") for i, p in enumerate(paths))
    return Rule(source=f"{where}: {at}", require_signature=required, keys=keys)


def _key(path: Path, *, where: str) -> TrustedKey:
    try:
        pem = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise InstallError(f"{where}: key file {path} is not there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"{where}: key file {path} cannot be read ({exc})") from exc
    trust.check_tree(path, what="a trusted key")
    try:
        der = public_key_der(pem, where=str(path))
    except ArtifactError as exc:
        raise InstallError(f"{where}: {exc}") from None
    return TrustedKey(path=path, key_id=key_id(der))


__all__ = [
    "NO_POLICY",
    "Policy",
    "Rule",
    "TrustedKey",
    "check_named",
    "check_release",
    "load_policy",
    "scope_name",
]
