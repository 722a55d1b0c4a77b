"""Where dependencies' build code runs, and what comes back from it (#20).

Build code (``setup.py``, a PEP 517 backend, a ``.pth`` that pip installs) is a dependency's, not
this build's. Each build gets a scratch folder in the system's temporary folder. As root, that
code runs as the build user (``VENVSHIP_BUILD_USER``, default ``nobody``, never uid 0) with a
HOME of its own made for this build, in a pid namespace whose processes all die with the child
venvship started. Nothing it can write is read back as trusted:

- the build cache (stored resolutions, wheels, builder venvs, work folders) stays root's and out
  of its reach; it runs a root-owned mirror of the builder venv;
- what it makes comes back through an outbox folder it owns, from which root copies single
  regular files (never through a symlink) and hashes the copy; pip's report comes over a pipe.

Without root, the build code runs as the user who builds and owns the cache: it can change what
later builds of that user read. The cache of one trust level is then that job's alone
(docs/explanation.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence
from urllib.parse import unquote, urlparse

from .._process import Kind, run
from ..errors import BuildError
from .builduser import alone, build_user, taking_turns
from .cachedir import others_may_rename

# A script pip wrote names its venv's python in its first line; the venv moves (the build user's
# folder, the cache, each build's mirror), so the line becomes one that finds the python beside
# the script wherever it is (pip's own form for paths too long for a #! line).
_RELOCATABLE = b'#!/bin/sh\n\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")"/python "$0" "$@"\n\' \'\'\'\n'
_CHUNK = 1 << 20
# A local folder named by a file: URL (not a git+file: repository, which pip clones elsewhere).
_FOLDER_URL = re.compile(r"(?<![+\w])file://[^\s;#\"']+")


@dataclass(frozen=True)
class Sandbox:
    """One build's scratch folder (``root``) and the user its build code runs as (None: this one)."""

    root: Path
    user: tuple[int, int] | None
    prelude: str | None = None  # root's mounts in the child's own namespace (see _exposing)

    @property
    def home(self) -> Path:
        return self.root / "home"

    def shared(self, name: str) -> Path:
        """Return a new folder of root's that the build code may read, not change (its inputs)."""
        path = self.root / "in" / name
        path.mkdir(parents=True)
        for folder in (path.parent, path):
            folder.chmod(0o755)
        return path

    def outbox(self, name: str) -> Path:
        """Return a new folder the build code owns and writes its results into."""
        path = self.root / "out" / name
        path.mkdir(mode=0o700)
        if self.user is not None:
            os.chown(path, *self.user)
        return path

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """Return ``base`` with this build's own HOME when the build code runs as the build user."""
        env = dict(base)
        if self.user is not None:
            # pip's caches (wheels it built, HTTP answers) and user config live under HOME: this
            # build's alone, so no build code leaves a wheel there for a later build to take.
            home = str(self.home)
            env.update(HOME=home, TMPDIR=home, XDG_CACHE_HOME=f"{home}/.cache")
            env.update(XDG_CONFIG_HOME=f"{home}/.config")
        return env

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str],
        kind: Kind,
        merge_stderr: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv``, which may run a dependency's code, as the build user in this sandbox.

        Raises BuildError when a process of the build user runs that this build did not start
        (before, or once the child has ended and its pid namespace with it).
        """
        if self.user is not None:
            alone(self.user[0])
        try:
            return run(
                argv,
                env=self.env(env),
                cwd=self.home,
                kind=kind,
                untrusted=True,
                as_user=self.user,
                prelude=self.prelude,
                merge_stderr=merge_stderr,
            )
        finally:
            if self.user is not None:
                alone(self.user[0])  # what it left could have been changed since: nothing is taken

    def take(self, path: Path, folder: Path) -> Path:
        """Return a copy in ``folder`` of the file the build code left at ``path``.

        Only a regular file is taken, opened without following a symlink: a link to one of root's
        files would otherwise put that file into the cache and the artifact.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise BuildError(f"{path}: cannot read what the build left ({exc.strerror or exc})") from exc
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise BuildError(f"{path}: what the build left is not a regular file")
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / path.name
            with open(dest, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        return dest

    def adopt(self, tree: Path, dest: Path) -> None:
        """Make ``dest`` a copy of the venv the build code made at ``tree``: owned by this user,
        writable by no other, scripts made relocatable. Replaces ``dest`` whole."""
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            _copy_tree(tree, partial, venv=os.fsencode(tree))
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(partial, dest)

    def local_folders(self, texts: Sequence[str]) -> dict[str, str]:
        """Return, for each ``file:`` URL of a local folder in ``texts``, the URL of a copy the build
        user owns: pip builds a folder in place, and the build user may not write the original.
        Nothing without a build user."""
        copies: dict[str, str] = {}
        for url in dict.fromkeys(m.group(0) for text in texts for m in _FOLDER_URL.finditer(text)):
            path = Path(unquote(urlparse(url).path))
            if self.user is None or not path.is_dir():
                continue
            dest = self.outbox(f"source-{uuid.uuid4().hex[:12]}") / (path.name or "source")
            shutil.copytree(path, dest, symlinks=True)
            for top, dirs, files in os.walk(dest):
                for name in (".", *dirs, *files):
                    os.lchown(os.path.join(top, name), *self.user)
            copies[url] = dest.as_uri()
        return copies

    def mirror(self, venv: Path) -> Path:
        """Return a path of ``venv`` the build user can run and not change: itself without a build
        user, else a root-owned copy (hard links where the file system allows) in this sandbox."""
        if self.user is None:
            return venv
        dest = self.root / "in" / "builder"
        dest.parent.mkdir(mode=0o755, exist_ok=True)
        _mirror_tree(venv, dest)
        return dest


def _mirror_tree(src: Path, dest: Path) -> None:
    """Copy ``src`` (root's, checked by :func:`unsound`) to ``dest`` with hard links when it can."""
    dest.mkdir(mode=0o755)
    with os.scandir(src) as entries:
        listed = list(entries)
    for entry in listed:
        target = dest / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            _mirror_tree(Path(entry.path), target)
        else:
            try:
                os.link(entry.path, target)
            except OSError:
                shutil.copy2(entry.path, target)


def _copy_tree(src: Path, dest: Path, *, venv: bytes) -> None:
    """Copy the tree the build code made: folders 0755, files 0644 or 0755, symlinks as links,
    nothing else; no symlink followed."""
    dest.mkdir(mode=0o755)
    dest.chmod(0o755)
    with os.scandir(src) as entries:
        listed = list(entries)
    for entry in listed:
        target = dest / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            _copy_tree(Path(entry.path), target, venv=venv)
        elif entry.is_file(follow_symlinks=False):
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    continue
                with open(target, "xb") as out:
                    first = fh.readline(len(venv) + 4096) if src.name == "bin" else b""
                    shebang = first.startswith(b"#!" + venv + b"/bin/") and first.endswith(b"\n")
                    out.write(_RELOCATABLE if shebang else first)
                    shutil.copyfileobj(fh, out, _CHUNK)
            os.chmod(target, 0o755 if st.st_mode & 0o111 else 0o644)


def unsound(tree: Path) -> str | None:
    """Return the first entry of ``tree`` (itself included) that another user owns or may change;
    None when there is none. Symlinks count by owner only (their mode means nothing)."""
    uid = os.geteuid()
    for top, dirs, files in os.walk(tree):
        for name in (".", *dirs, *files):
            path = os.path.join(top, name)
            st = os.lstat(path)
            if st.st_uid != uid or (not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022):
                return (
                    f"{os.path.normpath(path)} (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})"
                )
    return None


def _closed_above(path: str) -> str | None:
    """Return the highest folder on the way to ``path`` that other users cannot pass through."""
    here = "/"
    for part in Path(path).parts[1:]:
        here = os.path.join(here, part)
        if not os.stat(here).st_mode & stat.S_IXOTH:
            return here
    return None


def _exposing(interpreters: Sequence[str], stage: Path) -> str | None:
    """Return the shell lines that show the build user each interpreter's installation where it is.

    An interpreter under a folder of root's that others cannot pass through (``/root/.pyenv``) is
    bind-mounted there again, under an empty tmpfs laid over that folder: in the child's own mount
    namespace only, and nothing else of the folder shows.
    """
    shown: dict[str, str] = {}
    for python in interpreters:
        prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
        closed = _closed_above(prefix)
        if closed is not None and closed != prefix:
            shown[prefix] = closed
    if not shown:
        return None
    lines = []
    for n, prefix in enumerate(shown):
        (stage / str(n)).mkdir(parents=True)
        lines.append(f"mount --bind {shlex.quote(prefix)} {shlex.quote(str(stage / str(n)))}")
    for closed in dict.fromkeys(shown.values()):
        lines.append(f"mount -t tmpfs -o mode=0755,size=64k venvship {shlex.quote(closed)}")
    for n, prefix in enumerate(shown):
        lines.append(f"mkdir -p {shlex.quote(prefix)}")
        lines.append(f"mount --move {shlex.quote(str(stage / str(n)))} {shlex.quote(prefix)}")
    return "\n".join(lines)


@contextlib.contextmanager
def sandbox(*, interpreters: Sequence[str] = ()) -> Iterator[Sandbox]:
    """Yield a fresh sandbox for one build, removed afterwards; its build code can run
    ``interpreters`` even when they sit in a folder of root's (pyenv's in /root).

    Raises BuildError when the build user is unknown, when another user could rename the
    scratch folder (and so choose the build's inputs), or when a process of the build user runs
    that this build did not start (see :mod:`.builduser`); waits while another build of the same
    build user runs.

    Example: ``with sandbox() as sb: sb.run([python, "-m", "pip", "wheel", ...], env=env, kind="build")``
    """
    user = build_user()
    base = tempfile.gettempdir()
    renamable = others_may_rename(os.path.realpath(base))
    if renamable is not None:
        raise BuildError(
            f"{renamable}: the build's scratch folder would sit where other users may replace it (set TMPDIR)"
        )
    closed = _closed_above(os.path.realpath(base)) if user is not None else None
    if closed is not None:
        raise BuildError(
            f"{closed}: the build user cannot reach the build's scratch folder under {base} (set TMPDIR)"
        )
    with contextlib.ExitStack() as turns:
        if user is not None:
            turns.enter_context(taking_turns(user[0]))
            alone(user[0])
        with _scratch(base, user, interpreters) as sb:
            yield sb


@contextlib.contextmanager
def _scratch(base: str, user: tuple[int, int] | None, interpreters: Sequence[str]) -> Iterator[Sandbox]:
    """Yield the sandbox in a new scratch folder under ``base``; remove the folder afterwards."""
    root = Path(tempfile.mkdtemp(prefix="venvship-build-", dir=base))
    try:
        # Traversable (not listable) by the build user, who reaches its home, inputs and outboxes.
        root.chmod(0o711 if user is not None else 0o700)
        (root / "out").mkdir(mode=0o711)
        (root / "out").chmod(0o711)
        prelude = _exposing(interpreters, root / "mnt") if user is not None else None
        sb = Sandbox(root=root, user=user, prelude=prelude)
        sb.home.mkdir(mode=0o700)
        if user is not None:
            # git refuses a repository another user owns (a recipe's git+file source of root's);
            # whatever its config runs, runs as the build user, which all build code does anyway.
            (sb.home / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
            os.chown(sb.home, *user)
        yield sb
    finally:
        shutil.rmtree(root, ignore_errors=True)
