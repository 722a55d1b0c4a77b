"""An artifact's lock for one platform handed back as a PEP 751 ``pylock.toml``, with its wheels
beside it (``venvship export``), so that ``uv pip sync`` or ``pip install -r`` rebuild the same set
offline.

Every wheel is the artifact's own blob, checked against its digest while it is copied; the lock
names each by a path relative to itself, with its sha256 and size, which is what the installers
check again. The install tool's wheels are not part of the venv's set and are left out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from .. import __version__
from ..artifact.documents import INDEX_TYPE, Index, Manifest, VenvConfig
from ..errors import ArtifactError, BadReference, VenvshipError
from ..oci.layout import Layout
from ..oci.reference import Ref
from ..oci.source import Access, Source, open_source
from ..recipe.tomlwrite import toml_string, toml_value

WHEELHOUSE = "wheels"  # the folder beside pylock.toml that holds the wheels


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote: the lock file, the platform and digest it came from, its packages."""

    lock: Path
    platform: str
    digest: str
    packages: int

    def summary(self) -> str:
        return f"wrote {self.lock} ({self.packages} packages of {self.platform}, {self.digest[:19]}) and {WHEELHOUSE}/"

    def to_json(self) -> dict[str, object]:
        return {
            "lock": str(self.lock),
            "platform": self.platform,
            "digest": self.digest,
            "packages": self.packages,
        }


def _configs(source: Source, ref: Ref, scratch: Layout) -> list[tuple[str, VenvConfig]]:
    """Return (manifest digest, config) of each platform ``ref`` names."""
    target = ref.digest or ref.tag
    if target is None:
        raise BadReference(f"{ref}: name a tag or digest")
    desc, raw = source.get_manifest(target)
    digests = (
        [m.digest for m in Index.from_bytes(raw, where=str(ref)).manifests]
        if desc.media_type == INDEX_TYPE
        else [desc.digest]
    )
    out = []
    for digest in digests:
        manifest = Manifest.from_bytes(source.get_manifest(digest)[1], where=f"manifest {digest}")
        source.fetch_blob(manifest.config.digest, manifest.config.size, scratch)
        config = VenvConfig.from_bytes(scratch.read_blob(manifest.config.digest), where=f"{digest} config")
        out.append((digest, config))
    return out


def _choose(found: list[tuple[str, VenvConfig]], platform: str | None, ref: Ref) -> tuple[str, VenvConfig]:
    keys = [c.platform_key for _, c in found]
    if platform is None:
        if len(found) == 1:
            return found[0]
        raise BadReference(f"{ref}: {len(found)} platforms ({', '.join(keys)}); name one with --platform")
    for item in found:
        if item[1].platform_key == platform:
            return item
    raise BadReference(f"{ref}: no platform {platform} (it has {', '.join(keys)})")


def lock_text(config: VenvConfig, *, ref: str, digest: str) -> str:
    """Return ``config``'s lock as ``pylock.toml`` text naming the wheels under ``wheels/``."""
    major, minor = config.python.version.split(".")[:2]
    lines = [
        'lock-version = "1.0"',
        f"created-by = {toml_string('venvship')}",
        # The wheels were chosen for this interpreter's ABI: no other minor release installs them.
        f"requires-python = {toml_string(f'=={major}.{minor}.*')}",
    ]
    for wheel in sorted(config.lock, key=lambda w: canonicalize_name(w.name)):
        entry: dict[str, Any] = {
            "name": wheel.filename,
            "path": f"{WHEELHOUSE}/{wheel.filename}",
            "size": wheel.size,
            "hashes": {"sha256": wheel.sha256},
        }
        lines += [
            "",
            "[[packages]]",
            f"name = {toml_string(canonicalize_name(wheel.name))}",
            f"version = {toml_string(wheel.version)}",
            f"wheels = [{toml_value(entry)}]",
        ]
    tool = {"ref": ref, "digest": digest, "platform": config.platform_key, "venvship": __version__}
    lines += ["", "[tool.venvship]", *(f"{k} = {toml_string(v)}" for k, v in tool.items())]
    return "\n".join(lines) + "\n"


def _check(text: str, where: str) -> None:
    """Raise if ``text`` is not a lock that packaging's PEP 751 reader takes (it is written for others)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the build side runs on 3.10 too
        import tomli as tomllib
    try:
        from packaging.pylock import Pylock, PylockValidationError
    except ImportError as exc:  # pragma: no cover - packaging older than 25.0
        raise VenvshipError("export needs packaging 26.1 or later") from exc
    try:
        Pylock.from_dict(tomllib.loads(text))
    except PylockValidationError as exc:  # pragma: no cover - a bug of ours, not the user's input
        raise ArtifactError(f"{where}: the lock written would not be valid: {exc}") from exc


def export_lock(
    ref: Ref, *, output: Path, platform: str | None = None, access: Access | None = None
) -> Exported:
    """Write ``ref``'s lock for ``platform`` as ``output/pylock.toml`` with its wheels in
    ``output/wheels/``; ``output`` must not exist yet (it appears whole or not at all).

    Example: ``export_lock(parse_ref("oci:build/oci:demo:1.0"), output=Path("lock"), platform="debian-12-amd64-cp311")``
    """
    if output.exists() or output.is_symlink():
        raise VenvshipError(f"{output}: already exists; name a new folder")
    source = open_source(ref, access)
    parent = output.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=parent))
    try:
        scratch = Layout.create(staging / ".blobs")
        digest, config = _choose(_configs(source, ref, scratch), platform, ref)
        house = staging / WHEELHOUSE
        house.mkdir()
        for wheel in config.lock:
            # Verified against its digest while streaming; the file name was checked with the config.
            source.fetch_blob(wheel.digest, wheel.size, scratch)
            shutil.copyfile(scratch.blob_path(wheel.digest), house / wheel.filename)
        text = lock_text(config, ref=str(ref), digest=digest)
        _check(text, str(ref))
        (staging / "pylock.toml").write_text(text)
        shutil.rmtree(staging / ".blobs")
        staging.chmod(0o755)
        os.rename(staging, output)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
    return Exported(
        lock=output / "pylock.toml", platform=config.platform_key, digest=digest, packages=len(config.lock)
    )
