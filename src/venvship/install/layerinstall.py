"""Fill a staging generation from ready-to-run layers: no pip, no uv, nothing the artifact names runs.

Each distribution's layer is unpacked once into the host's store (store.py) and its files are
hard-linked into the generation; the few files that name the venv's path (scripts' shebangs) are
written anew naming the generation's final path, and their RECORD rows fixed to match. With
``compile=False`` the layers' bytecode is left out.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._log import logger
from ..artifact import VenvConfig
from ..errors import InstallError
from ..layerformat import PREFIX, LayerInfo, Layers
from ..oci.layout import Layout
from . import store
from .record import fix_records, replace_file

UNPACK_WORKERS = 4
_SHEBANG_MAX = 127  # what the kernel reads of a #! line on Linux


@dataclass(frozen=True)
class Filled:
    """What filling a generation did: distributions linked from the store, unpacked, files linked."""

    linked: int
    unpacked: int
    files: int
    pycs: int  # bytecode files among them


def layers_of(config: VenvConfig) -> Layers:
    """Return the artifact's layers, or raise naming the way to install it without them."""
    if config.layers is None:
        raise InstallError(
            f"artifact {config.name} {config.version} carries no ready-to-run layers; "
            "install it with --from-wheels"
        )
    return config.layers


def fill(
    config: VenvConfig,
    cache: Layout,
    staging: Path,
    *,
    final: Path,
    compile: bool,
    site: str,
    on_layer: Callable[[LayerInfo], None] | None = None,
) -> Filled:
    """Link every distribution of ``config`` into the fresh venv ``staging`` (named ``final`` once done).

    ``site``: the venv's site-packages relative to it, which must be the one the layers were made
    for. Layers missing from the store are unpacked from the cache (over a bounded pool).
    """
    layers = layers_of(config)
    if layers.site != site:
        raise InstallError(f"the layers are for {layers.site}; this interpreter's venv has {site}")
    todo = layers.distributions
    present = {d.digest for d in todo if store.load(store.entry_path(cache.root, d.digest)) is not None}

    def prepare(layer: LayerInfo) -> store.Entry:
        entry = store.checked(cache, layer, mtime=layers.mtime)
        if on_layer is not None:
            on_layer(layer)
        return entry

    with ThreadPoolExecutor(max_workers=max(1, min(UNPACK_WORKERS, len(todo)))) as pool:
        entries = list(pool.map(prepare, todo))
    owners: dict[str, str] = {}
    changed: dict[Path, bytes] = {}
    files = 0
    for layer, entry in zip(todo, entries):
        files += _link(entry, layer, staging, final=final, compile=compile, owners=owners, changed=changed)
    for entry in entries:
        store.after_linking(entry)
    if changed:
        fix_records(staging / site, changed)
    pycs = sum(1 for rel in owners if _is_pyc(rel)) if compile else 0
    return Filled(linked=len(present), unpacked=len(todo) - len(present), files=files, pycs=pycs)


def _is_pyc(rel: str) -> bool:
    return rel.endswith(".pyc") and "/__pycache__/" in f"/{rel}"


def _link(
    entry: store.Entry,
    layer: LayerInfo,
    staging: Path,
    *,
    final: Path,
    compile: bool,
    owners: dict[str, str],
    changed: dict[Path, bytes],
) -> int:
    """Link ``entry``'s files into ``staging``; return how many. Relocated files are written anew;
    a file an earlier layer wrote is replaced (the later distribution in the lock wins)."""
    relocate = set(layer.relocate)
    made: set[str] = set()
    for folder in entry.folders:
        os.makedirs(staging / folder, mode=0o755, exist_ok=True)
        made.add(folder)
    count = 0
    for rel, (_, _, mode) in entry.files.items():
        if not compile and _is_pyc(rel):
            continue
        other = owners.get(rel)
        owners[rel] = layer.name
        if other is not None:
            # Two distributions write this file: the later in the lock wins, as installing them
            # in that order would leave it.
            logger.debug("%s: %s's file replaces %s's", rel, layer.name, other)
            os.unlink(staging / rel)
        parent = posixpath.dirname(rel)
        if parent and parent not in made:
            os.makedirs(staging / parent, mode=0o755, exist_ok=True)
            made.add(parent)
        source, target = entry.tree / rel, staging / rel
        if rel in relocate:
            data = relocated(source.read_bytes(), final)
            replace_file(target, data, mode=mode)
            changed[target] = data
        else:
            _hard_link(source, target)
        count += 1
    return count


def _hard_link(source: Path, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise InstallError(f"{target}: a layer writes a file that is there already") from exc
        # Another file system, a protected_hardlinks refusal, too many links to one inode.
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(source, target, follow_symlinks=False)


def relocated(data: bytes, final: Path) -> bytes:
    """Return ``data`` with :data:`PREFIX` replaced by ``final``; a ``#!`` line that gets too long for
    the kernel (or holds a space) becomes the ``/bin/sh`` trampoline pip and uv write for such venvs."""
    prefix, target = os.fsencode(PREFIX), os.fsencode(final)
    out = data.replace(prefix, target)
    if not out.startswith(b"#!"):
        return out
    first, sep, rest = out.partition(b"\n")
    interpreter = first[2:].strip()
    if len(first) <= _SHEBANG_MAX and b" " not in interpreter:
        return out
    if not data.startswith(b"#!" + prefix):
        return out  # not a venv python shebang: left as the layer has it
    quoted = b'"' + interpreter + b'"'
    return b"#!/bin/sh\n'''exec' " + quoted + b' "$0" "$@"\n' + b"' '''" + sep + rest
