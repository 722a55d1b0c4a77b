"""The mirrors of a host: ``/etc/venvship/registries.toml`` (or ``--registries-conf FILE``) and
``--mirror``, in the model of containers-registries.conf's ``[[registry.mirror]]``::

    [[registry]]
    prefix = "registry.example.com/openstack"     # a registry, or a repository prefix in one

    [[registry.mirror]]                           # tried in order, before the origin
    location = "cache-eu.example.net:5000/openstack"   # replaces the prefix
    ca-file = "/etc/venvship/cache-eu-ca.pem"     # besides the system CAs
    connect-timeout = 2                           # seconds before it counts as dead (default 3)

    [[registry.mirror]]
    location = "10.1.2.3:5000/openstack"
    insecure = true                               # plain HTTP

The ``[[registry]]`` whose prefix is the longest one a reference starts with (at a ``/``) applies;
``--mirror HOST[/PATH]`` is the rule ``prefix = "REGISTRY[/PATH]"``, ``location = "HOST[/PATH]"``:
a mirror that holds the reference under the same repository name (a pull-through cache), its PATH
the part of the name it mirrors; these come first. Unlike containers, tags
are resolved at the origin unless ``--mirror-tags`` (see ``oci/mirrors.py``), and each blob comes
from the first mirror that has it. Without ``tomllib`` (Python 3.9, 3.10) the same document is
read as JSON (``registries.json``), as for the trust policy (``host/conffile.py``). Stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import BadReference, InstallError
from ..host import trust
from ..host.conffile import find_settings, read_settings
from ..oci.mirrors import DEFAULT_CONNECT_TIMEOUT, Mirror, MirrorSource
from ..oci.reference import HttpLayoutRef, LayoutRef, Ref, RegistryRef, parse_ref
from ..oci.source import Access, Source, open_source, registry_client

SETTINGS_DIR = Path("/etc/venvship")
DEFAULT_FILES = (SETTINGS_DIR / "registries.toml", SETTINGS_DIR / "registries.json")
WHAT = "the mirror configuration"
_REGISTRY_KEYS = ("prefix", "mirror")
_MIRROR_KEYS = ("location", "insecure", "ca-file", "connect-timeout")
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class MirrorOptions:
    """Where one run's mirrors come from: the settings file, ``--mirror`` and ``--mirror-tags``."""

    file: Path | None = None  # None: /etc/venvship/registries.toml (or .json) if there
    extra: tuple[Mirror, ...] = ()  # mirrors of the reference's registry, tried first
    tags: bool = False  # mirrors may resolve tags (and referrers lists) too


@dataclass(frozen=True)
class MirrorRule:
    """One ``[[registry]]``: the mirrors of the names under ``prefix``."""

    prefix: str
    mirrors: tuple[Mirror, ...]


@dataclass(frozen=True)
class MirrorConfig:
    """A loaded mirror configuration: one rule per prefix."""

    path: Path | None
    rules: tuple[MirrorRule, ...]

    def rule_for(self, ref: RegistryRef) -> MirrorRule | None:
        """Return the rule with the longest prefix ``ref`` lies under, or None."""
        name = f"{ref.registry}/{ref.repository}"
        under = [r for r in self.rules if name == r.prefix or name.startswith(r.prefix + "/")]
        return max(under, key=lambda r: len(r.prefix), default=None)


def location_problem(text: str) -> str | None:
    """Return why ``text`` is no ``HOST[:PORT][/PATH]`` (a registry or a namespace in one), or None.

    Example: ``location_problem("cache.example:5000/openstack") is None``
    """
    host, _, path = text.partition("/")
    if not _HOST.fullmatch(host):
        return f"{text!r}: not HOST[:PORT][/PATH] (bad host {host!r})"
    try:
        parse_ref(f"{host}/{path.rstrip('/') + '/' if path else ''}x")  # valid when names below it are
    except BadReference:
        return f"{text!r}: not HOST[:PORT][/PATH] (bad path {path!r})"
    return None


def load_mirror_config(path: Path | None) -> MirrorConfig:
    """Return the mirror configuration at ``path``, else the host's, else an empty one.

    Example: ``load_mirror_config(None).rule_for(parse_ref("registry.example.com/os/keystone:31"))``
    """
    path = find_settings(path, DEFAULT_FILES, what=WHAT)
    if path is None:
        return MirrorConfig(path=None, rules=())
    data = read_settings(path, what=WHAT)
    where = str(path)
    _known(data, ("registry",), where=where, at="")
    items = _tables(data.get("registry", []), where=where, at="registry")
    rules: dict[str, MirrorRule] = {}
    for i, item in enumerate(items):
        at = f"registry[{i}]"
        _known(item, _REGISTRY_KEYS, where=where, at=at)
        prefix = _location(item, "prefix", where=where, at=at)
        if prefix in rules:
            raise InstallError(f"{where}: {at}.prefix: {prefix!r} is configured twice")
        mirrors = _tables(item.get("mirror", []), where=where, at=f"{at}.mirror")
        rules[prefix] = MirrorRule(
            prefix=prefix,
            mirrors=tuple(
                _mirror(m, where=where, at=f"{at}.mirror[{j}]", base=path.parent)
                for j, m in enumerate(mirrors)
            ),
        )
    return MirrorConfig(path=path, rules=tuple(rules.values()))


def _known(table: Mapping[str, Any], known: tuple[str, ...], *, where: str, at: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        key = f"{at}.{unknown[0]}" if at else unknown[0]
        raise InstallError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")


def _location(table: Mapping[str, Any], key: str, *, where: str, at: str) -> str:
    """Return ``table[key]``, a registry location (``HOST[:PORT][/PATH]``), or raise naming the key."""
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise InstallError(f"{where}: {at}.{key}: missing or not a string")
    problem = location_problem(value)
    if problem:
        raise InstallError(f"{where}: {at}.{key}: {problem}")
    return value


def _tables(value: Any, *, where: str, at: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        table = re.sub(r"\[[0-9]+\]", "", at)  # registry[0].mirror → registry.mirror
        raise InstallError(f"{where}: {at}: not a list of tables ([[{table}]])")
    return value


def _mirror(table: Mapping[str, Any], *, where: str, at: str, base: Path) -> Mirror:
    _known(table, _MIRROR_KEYS, where=where, at=at)
    location = _location(table, "location", where=where, at=at)
    insecure = table.get("insecure", False)
    if not isinstance(insecure, bool):
        raise InstallError(f"{where}: {at}.insecure: not true or false")
    timeout = table.get("connect-timeout", DEFAULT_CONNECT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise InstallError(f"{where}: {at}.connect-timeout: not a number of seconds (0 < s <= 600)")
    ca_file = table.get("ca-file")
    if ca_file is not None:
        if not isinstance(ca_file, str) or not ca_file:
            raise InstallError(f"{where}: {at}.ca-file: not a file path")
        ca_path = base / ca_file
        if not ca_path.is_file():
            raise InstallError(f"{where}: {at}.ca-file: {ca_path} is not there")
        trust.check_tree(ca_path, what="a mirror's CA file")  # as root: who may change it could redirect TLS
        ca_file = str(ca_path)
    return Mirror(location=location, insecure=insecure, ca_file=ca_file, connect_timeout=float(timeout))


def open_install_source(ref: Ref, access: Access, mirrors: MirrorOptions) -> Source:
    """Return the :class:`Source` an install reads ``ref`` from: a layout as it is; a registry
    through its mirrors (``--mirror`` first, then the configuration's), the origin last.

    The origin alone is given ``access`` (its login, TLS); each mirror has its own.

    Example: ``open_install_source(parse_ref("reg.example/os/keystone:31"), Access(), MirrorOptions())``
    """
    if isinstance(ref, HttpLayoutRef) and mirrors.extra:
        raise BadReference(
            f"--mirror: {ref} is a layout on a web server; to read it through a cache, name the "
            "cache's URL in the reference instead"
        )
    if isinstance(ref, (LayoutRef, HttpLayoutRef)):
        return open_source(ref, access)
    from ..oci.registry import RegistrySource  # the HTTP client is only loaded when a registry is named

    origin = RegistrySource(ref, client=registry_client(ref.registry, access))
    rule = load_mirror_config(mirrors.file).rule_for(ref)
    chosen = [(m, command_line_prefix(m, ref)) for m in mirrors.extra]
    chosen += [(m, rule.prefix) for m in rule.mirrors] if rule else []
    sources = [RegistrySource(m.ref_for(ref, prefix), client=m.client()) for m, prefix in chosen]
    return MirrorSource(origin, sources, tags=mirrors.tags)


def command_line_prefix(mirror: Mirror, ref: RegistryRef) -> str:
    """Return the prefix ``--mirror HOST[/PATH]`` mirrors for ``ref``: ``REGISTRY[/PATH]``, so that
    it means what the same location means in the mirror configuration under that prefix.

    Example: ``--mirror cache:5000/os`` reads ``reg/os/keystone`` as ``cache:5000/os/keystone``.
    """
    path = mirror.location.rstrip("/").partition("/")[2]
    prefix = f"{ref.registry}/{path}" if path else ref.registry
    name = f"{ref.registry}/{ref.repository}"
    if name != prefix and not name.startswith(prefix + "/"):
        raise BadReference(
            f"--mirror {mirror.location}: {name} is not under {prefix}; a mirror on the command line "
            f"holds the same repository names (for other names, map a prefix in {DEFAULT_FILES[0]})"
        )
    return prefix


def served_by(source: Source) -> dict[str, str]:
    """Return, for each blob ``source`` fetched, the ``HOST/REPO`` it came from ({} for a layout)."""
    return dict(source.served) if isinstance(source, MirrorSource) else {}
