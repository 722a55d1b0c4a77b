"""Fill a staging generation from ready-to-run layers: no pip, no uv, nothing the artifact names runs.

Each distribution's layer is unpacked once into the host's store (store.py); the generation gets
its files from there, so that no edit in one venv reaches another venv or the store (#22):

- every file an operator may edit (modules, data, scripts, extension modules: anything but
  bytecode) is the generation's own: a reflink (``FICLONE``, blocks shared copy-on-write) where
  the file system has them (btrfs, XFS, bcachefs), else a copy. An edit in place, a ``cp`` over
  it, ``patchelf`` or an editor's write-and-rename all change that venv only.
- bytecode (``__pycache__/*.pyc``) is hard-linked: its only writers, the import system and
  ``compileall``, write a new file and rename it over the old one, which breaks the link.
- the few files that name the venv's path (scripts' shebangs) are written anew naming the
  generation's final path, and their RECORD rows fixed to match.

With ``compile=False`` the layers' bytecode is left out.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._log import logger
from ..artifact.documents import VenvConfig
from ..artifact.layerformat import PREFIX, LayerInfo, Layers
from ..errors import InstallError
from ..oci.layout import Layout
from ..venvformat.record import fd_matches, fix_records, hash_field, replace_file
from . import store
from .faults import pause_point
from .unpack import Ahead

_SHEBANG_MAX = 127  # what the kernel reads of a #! line on Linux
_FICLONE = 0x40049409  # linux/fs.h; fcntl.FICLONE from Python 3.12 only
# What an ioctl(FICLONE) that cannot share blocks answers: a file system without reflinks (ext4,
# tmpfs), another file system, or a kernel or seccomp filter that lacks the call.
_NO_REFLINK = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM)


@dataclass(frozen=True)
class Filled:
    """What filling a generation did: distributions linked from the store, unpacked, files linked."""

    linked: int
    unpacked: int
    files: int
    pycs: int  # bytecode files among them
    copied: int = 0  # files given to the generation as its own (reflinked or copied)
    reflinked: int = 0  # of those, the ones that share their blocks copy-on-write
    extensions: tuple[str, ...] = ()  # the files that may be extension modules (``*.so``)


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
    for. Layers missing from the store are unpacked from the cache, the next one's blob read and
    inflated in a thread while this one's files are written (:class:`.unpack.Ahead`).
    """
    layers = layers_of(config)
    if layers.site != site:
        raise InstallError(f"the layers are for {layers.site}; this interpreter's venv has {site}")
    todo = layers.distributions
    present = {d.digest for d in todo if store.is_entry(cache.root, d.digest)}

    # Checked up front: the bytecode that the health check of a venv without any reads from the
    # store. Every file linked or copied is checked as it is (_Links).
    up_front = _nothing if compile else store.is_pyc

    def prepare(layer: LayerInfo, ahead: Ahead) -> store.Entry:
        entry = store.checked(cache, layer, mtime=layers.mtime, first=up_front, inflated=ahead.take(layer))
        if layer is todo[0]:
            pause_point("unpacking")  # the test seam for a kill while the store is being filled
        if on_layer is not None:
            on_layer(layer)
        return entry

    # One layer's files at a time: a thread per core spends its time waiting for the GIL, which
    # tarfile and the per-file system calls take and give back all the time (keystone, 2 cores,
    # tmpfs: a cold install in 3.4 s this way, 4.2 s in two threads; a warm store read in 0.055 s,
    # 0.09). Reading, hashing and inflating the next blob let go of it: that runs ahead.
    missing = [(cache.blob_path(d.digest), d) for d in todo if d.digest not in present]
    with Ahead(missing) as ahead:
        entries = [prepare(layer, ahead) for layer in todo]
    # A file two distributions write is the later one's in the lock, as installing them in
    # that order would leave it; each distribution's files are then linked on their own.
    owner: dict[str, int] = {}
    for n, entry in enumerate(entries):
        for rel in entry.files:
            if compile or not store.is_pyc(rel):
                owner[rel] = n
    links = [_Links(entry, layer, staging, final=final) for entry, layer in zip(entries, todo)]
    for rel, n in owner.items():
        links[n].paths.append(rel)
    # Linking too (0.5-0.6 s in this thread, 1.0-1.1 s in four).
    for job in links:
        job.run_or_renew(cache, layers.mtime)
    changed = {path: data for job in links for path, data in job.changed.items()}
    if changed:
        fix_records(staging / site, changed)
    pycs = sum(1 for rel in owner if store.is_pyc(rel)) if compile else 0
    return Filled(
        linked=len(present),
        unpacked=len(todo) - len(present),
        files=len(owner),
        pycs=pycs,
        copied=sum(job.copied for job in links),
        reflinked=sum(job.reflinked for job in links),
        extensions=tuple(rel for rel in owner if rel.endswith(".so")),
    )


def _nothing(rel: str) -> bool:
    return False


class _Links:
    """One distribution's files, from its store entry into a staging venv: bytecode hard-linked, the
    rest the venv's own (reflinked or copied), the few that name the venv's path written anew
    (``changed``: path → new bytes, for their RECORD rows).

    Plain string paths: this runs for every file of every distribution.
    """

    def __init__(self, entry: store.Entry, layer: LayerInfo, staging: Path, *, final: Path) -> None:
        self.entry, self.layer, self.final = entry, layer, final
        self.root = os.fspath(staging)
        self.paths: list[str] = []
        self.changed: dict[Path, bytes] = {}
        self.copied = self.reflinked = self.rehashed = 0
        self.reflinks = True  # until the file system says it has none

    def run_or_renew(self, cache: Layout, mtime: int) -> None:
        """Link; if a store file changed since its last check, its entry is made anew from the blob
        (warning), what was linked from it undone, and linked again once."""
        try:
            self.run()
        except store.Drifted:
            for rel in self.paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.root, rel))
            self.changed.clear()
            self.copied = self.reflinked = 0
            self.entry = store.checked(cache, self.layer, mtime=mtime)
            self.run()

    def run(self) -> None:
        tree, root = os.fspath(self.entry.tree), self.root
        self.rehashed = 0  # bytecode whose stamp no longer vouched for it
        relocate = set(self.layer.relocate)
        made: set[str] = {""}
        found: dict[str, list[int]] = {}  # stamps to record: hard-linked, or hashed as read
        for folder in self.entry.folders:
            os.makedirs(os.path.join(root, folder), mode=0o755, exist_ok=True)
            made.add(folder)
        for rel in self.paths:
            parent = posixpath.dirname(rel)
            if parent not in made:
                os.makedirs(os.path.join(root, parent), mode=0o755, exist_ok=True)
                made.add(parent)
            source, target = os.path.join(tree, rel), os.path.join(root, rel)
            if rel in relocate:
                data = relocated(self._read(rel, source), self.final)
                replace_file(Path(target), data, mode=self.entry.files[rel][2])
                self.changed[Path(target)] = data
            elif store.is_pyc(rel):
                found[rel] = self._link(rel, source, target)
            elif (known := self._own_copy(rel, source, target, mode=self.entry.files[rel][2])) is not None:
                found[rel] = known
        store.after_linking(self.entry, found)
        if self.rehashed:
            logger.debug(
                "%s: %d stored files hashed again (their stamps no longer held)",
                self.layer.title,
                self.rehashed,
            )

    def _read(self, rel: str, source: str) -> bytes:
        """Return the bytes of store file ``rel``, checked against its record."""
        try:
            # Not blocking on a FIFO, not following a link: either is a changed store file.
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise store.Drifted(f"{source}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as fh:
            data = fh.read() if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        if hash_field(data) != self.entry.files[rel][0]:
            raise store.Drifted(f"{source}: changed since it was unpacked")
        return data

    def _link(self, rel: str, source: str, target: str) -> list[int]:
        """Hard-link store file ``rel`` into the venv, hashed first if its stamp no longer vouches
        for it; return its stamp after linking."""
        try:
            if not store.vouched(self.entry, rel, os.lstat(source)):
                if store.hashed(self.entry, rel) is None:
                    raise store.Drifted(f"{source}: changed since it was unpacked")
                self.rehashed += 1
            _hard_link(source, target)
            return store.stamp(os.lstat(source))
        except FileNotFoundError as exc:
            raise store.Drifted(f"{source}: gone from the store") from exc

    def _own_copy(self, rel: str, source: str, target: str, *, mode: int) -> list[int] | None:
        """Write ``target`` as the venv's own copy of store file ``rel`` at ``source``, its mtime kept
        (the layer's bytecode headers name the sources' mtimes), checked as it is opened and again
        once copied; return its stamp if it had to be hashed."""
        try:
            # Not blocking on a FIFO, not following a link: either is a changed store file.
            src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise store.Drifted(f"{source}: {exc.strerror}") from exc
        try:
            st = os.fstat(src)
            known = store.check_open(self.entry, rel, src, st)
            try:
                dst = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            except FileExistsError as exc:
                raise InstallError(f"{target}: a layer writes a file that is there already") from exc
            try:
                if self.reflinks and _reflink(src, dst):
                    self.reflinked += 1
                else:
                    self.reflinks = False  # one file system per store: no use asking again
                    _copy_bytes(src, dst, st.st_size)
                if stat.S_IMODE(os.fstat(dst).st_mode) != mode:
                    os.fchmod(dst, mode)  # the umask trimmed it
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                after = os.fstat(src)
                if store.stamp(after) != store.stamp(st) or after.st_size != st.st_size:
                    # Written while it was checked or copied: the copy decides, and is not stamped.
                    known = None
                    with os.fdopen(os.dup(dst), "rb") as fh:
                        fh.seek(0)
                        if not fd_matches(fh, self.entry.files[rel][0]):
                            raise store.Drifted(f"{source}: changed while it was copied")
            finally:
                os.close(dst)
        finally:
            os.close(src)
        self.copied += 1
        return known


def _reflink(src: int, dst: int) -> bool:
    """Make ``dst`` share ``src``'s blocks copy-on-write; return False where the file system cannot."""
    try:
        fcntl.ioctl(dst, _FICLONE, src)
    except OSError as exc:
        if exc.errno in _NO_REFLINK:
            return False
        raise
    return True


def _copy_bytes(src: int, dst: int, size: int) -> None:
    """Copy ``size`` bytes from ``src`` to ``dst`` in the kernel (sendfile), else through memory."""
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(dst, src, offset, min(size - offset, 1 << 30))
            if sent == 0:
                break
            offset += sent
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS) or offset:
            raise
    while chunk := os.pread(src, 1 << 20, offset):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
        offset += len(chunk)


def _hard_link(source: str, target: str) -> None:
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
