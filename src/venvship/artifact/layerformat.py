"""Ready-to-run layers (DESIGN §4): what one distribution's install writes into a venv, bytecode
included, as one reproducible tar+gzip blob per distribution; the build side writes them, targets
only unpack them.

A layer holds regular files and directories only, with paths relative to the venv root
(``lib/python3.11/site-packages/...``, ``bin/...``, ``share/...``), owner 0, mode 0644 or 0755 and
one fixed mtime, so that the timestamp ``.pyc`` files it carries stay valid after unpacking. Files
that name the venv's path (scripts' shebangs) hold :data:`PREFIX` instead, listed per layer in
``relocate``; the target writes its real path there. Stdlib only: both sides import this.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ArtifactError

LAYER_TYPE = "application/vnd.venvship.venv.layer.v1.tar+gzip"
FORMAT = 1
# The venv path a layer's files name; a fixed string so that layers are reproducible (a pure
# distribution's layer is one blob on every platform with the same Python minor).
PREFIX = "/venvship-build-prefix/venv"
DEFAULT_EPOCH = 315532800  # 1980-01-01, as wheels' zip timestamps start; SOURCE_DATE_EPOCH wins
MAX_MEMBERS = 200_000

# What `python -m venv` makes: a layer never writes these (nor anything under lib64, a symlink).
_SKELETON = re.compile(r"^(pyvenv\.cfg|lib64(/.*)?|bin/(python[0-9.]*|activate.*|Activate\.ps1))$")
# venv-pull's own files in a generation (its state file, the facts-pending marker, their temp
# files, record.replace_file's temp files), at any depth: a layer that ships one would forge them.
_OWN = re.compile(r"(^|/)(venvship-state\.json|\.venvship[^/]*|[^/]*\.venvship-tmp)(/|$)")


@dataclass(frozen=True)
class LayerInfo:
    """One distribution's ready-to-run layer, beside the wheel it was made from (one hash chain)."""

    name: str
    version: str
    wheel_sha256: str  # hex, as in the lock
    digest: str  # sha256:<hex> of the layer blob
    size: int
    relocate: tuple[str, ...] = ()  # venv-relative files that name PREFIX

    @property
    def title(self) -> str:
        return f"{self.name}-{self.version}.venv.tar.gz"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "wheel_sha256": self.wheel_sha256,
            "digest": self.digest,
            "size": self.size,
            "relocate": list(self.relocate),
        }

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> LayerInfo:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: not an object")

        def text(key: str) -> str:
            value = data.get(key)
            if not isinstance(value, str) or not value or "\0" in value:
                raise ArtifactError(f"{where}: '{key}' is missing or not a string")
            return value

        digest = text("digest")
        if not re.match(r"^sha256:[0-9a-f]{64}$", digest):
            raise ArtifactError(f"{where}: unsupported digest {digest!r}")
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ArtifactError(f"{where}: 'size' is not a non-negative integer")
        relocate = data.get("relocate", [])
        if not isinstance(relocate, list) or not all(isinstance(p, str) for p in relocate):
            raise ArtifactError(f"{where}: 'relocate' is not a list of paths")
        for path in relocate:
            check_member(path, where=f"{where}.relocate")
        return cls(
            name=text("name"),
            version=text("version"),
            wheel_sha256=text("wheel_sha256"),
            digest=digest,
            size=size,
            relocate=tuple(relocate),
        )


@dataclass(frozen=True)
class Layers:
    """The layers section of a config: how they were made, and one :class:`LayerInfo` per distribution."""

    mtime: int  # every file's mtime, which the .pyc headers name
    cache_tag: str  # the bytecode's interpreter tag ("cpython-311"); "" when none was compiled
    magic: str  # hex of importlib.util.MAGIC_NUMBER of the interpreter that compiled it
    site: str  # venv-relative site-packages ("lib/python3.11/site-packages")
    distributions: tuple[LayerInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "prefix": PREFIX,
            "mtime": self.mtime,
            "cache_tag": self.cache_tag,
            "magic": self.magic,
            "site": self.site,
            "distributions": [d.to_json() for d in self.distributions],
        }

    @classmethod
    def from_json(cls, data: Any, *, where: str = "config.layers") -> Layers:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: not an object")
        if data.get("format") != FORMAT or data.get("prefix") != PREFIX:
            raise ArtifactError(f"{where}: unsupported layer format {data.get('format')!r}")
        mtime = data.get("mtime")
        if not isinstance(mtime, int) or isinstance(mtime, bool) or not 0 <= mtime < 2**32:
            raise ArtifactError(f"{where}: 'mtime' is not a timestamp")
        strings = {k: data.get(k) for k in ("cache_tag", "magic", "site")}
        for key, value in strings.items():
            if not isinstance(value, str) or "\0" in value:
                raise ArtifactError(f"{where}: '{key}' is not a string")
        site = str(strings["site"])
        if not re.match(r"^lib/python3\.[0-9]+t?/site-packages$", site):
            raise ArtifactError(f"{where}: 'site' {site!r} is not lib/python3.X/site-packages")
        if not re.match(r"^([0-9a-f]{8})?$", str(strings["magic"])):
            raise ArtifactError(f"{where}: 'magic' is not 4 bytes of hex")
        items = data.get("distributions")
        if not isinstance(items, list):
            raise ArtifactError(f"{where}: 'distributions' is not a list")
        dists = tuple(
            LayerInfo.from_json(d, where=f"{where}.distributions[{i}]") for i, d in enumerate(items)
        )
        return cls(
            mtime=mtime,
            cache_tag=str(strings["cache_tag"]),
            magic=str(strings["magic"]),
            site=site,
            distributions=dists,
        )

    def by_wheel(self) -> Mapping[str, LayerInfo]:
        """Return wheel sha256 → layer."""
        return {d.wheel_sha256: d for d in self.distributions}


def check_member(name: str, *, where: str) -> str:
    """Return ``name`` if it is a path a layer may write (relative, normalised, not the venv's own
    skeleton, not named like venv-pull's own files); raise ArtifactError naming it otherwise."""
    if (
        not name
        or "\0" in name
        or name.startswith("/")
        or posixpath.normpath(name) != name
        or name == "."
        or name.split("/")[0] == ".."
        or _SKELETON.match(name)
    ):
        raise ArtifactError(f"{where}: layer path {name!r} is not a plain path inside the venv")
    if _OWN.search(name):
        raise ArtifactError(f"{where}: layer path {name!r} is named like a file of venv-pull's own")
    return name
