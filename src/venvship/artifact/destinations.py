"""Where a venv may live: the install path a recipe names (build time) and the destination
``venv-pull`` installs into (on the target, as root).

A destination becomes a symlink, and a plain folder found there is moved aside as a generation,
so it must never be a folder that the system, a user or venvship itself keeps other things in.
Refused by :func:`check_install_path` (the text alone, on both sides):

- a relative path, a NUL, a path not in normal form (``..``, ``.``, ``//``; one trailing slash is
  fine): ``/srv/a/../etc`` is refused naming ``/srv/etc``, so what is checked is what is written;
- ``/`` and every folder directly in ``/`` (``/opt``, ``/srv``, ``/home``, ``/tmp`` …), in
  ``/usr``, ``/usr/local`` and ``/var`` (``/usr/share``, ``/var/www`` …): system folders;
- anything in a system tree, :data:`SYSTEM_TREES`: what the OS, the kernel or the package
  manager owns (``/etc``, ``/usr/lib``, ``/usr/share``, ``/usr/local/bin``, ``/var/lib`` …);
- a home folder (``/root``, ``/home/NAME``); paths below one (``/home/svc/venvs/x``) stay allowed;
- with ``as_root`` (a recipe's install path, and a destination when venv-pull runs as root):
  anything directly in a folder every user may write, :data:`SHARED_TEMP` (``/tmp/x``). Root
  requires the destination's folder to be root's alone (``host/trust.py``), which these never
  are, so a recipe naming one would build and then be refused on every target.

:func:`check_destination` adds what only the target knows: the real location behind symlinked
parents, the home folders of its users, mount points, venv-pull's cache and facts folders, and
the other venvs on the host. Stdlib only: ``venv-pull`` imports it.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path, PurePath, PurePosixPath
from typing import Iterable, Mapping

from ..errors import InstallError, RecipeError
from .jsondoc import Refusal, artifact_error

# Inside these, nothing is a venv's to take: the OS, the kernel and the package manager own them.
SYSTEM_TREES = tuple(
    PurePosixPath(p)
    for p in (
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/nix",
        "/proc",
        "/run",
        "/sbin",
        "/snap",
        "/sys",
        "/usr/bin",
        "/usr/games",
        "/usr/include",
        "/usr/lib",
        "/usr/lib32",
        "/usr/lib64",
        "/usr/libexec",
        "/usr/libx32",
        "/usr/sbin",
        "/usr/share",
        "/usr/src",
        "/usr/local/bin",
        "/usr/local/etc",
        "/usr/local/include",
        "/usr/local/lib",
        "/usr/local/lib64",
        "/usr/local/sbin",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/lock",
        "/var/log",
        "/var/mail",
        "/var/run",
        "/var/spool",
    )
)
# Their direct children are system folders (``/opt``, ``/usr/share``, ``/var/www``), not venvs.
SYSTEM_PARENTS = tuple(PurePosixPath(p) for p in ("/", "/usr", "/usr/local", "/var"))
HOME_PARENT = PurePosixPath("/home")
# World-writable on every host (sticky): a destination's folder must be root's alone.
SHARED_TEMP = tuple(PurePosixPath(p) for p in ("/tmp", "/var/tmp", "/dev/shm"))


def normal_form(path: str) -> str:
    """Return ``path`` with ``.``, ``..`` and repeated slashes resolved, without a trailing slash.

    Example: ``normal_form("/srv//a/../b/") == "/srv/b"``
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def _inside(path: PurePath, folder: PurePath) -> bool:
    return path == folder or folder in path.parents


def _broken_rule(path: PurePosixPath) -> str | None:
    """Return why the normal absolute ``path`` may not hold a venv, or None."""
    if path == PurePosixPath("/"):
        return "is the root folder"
    for tree in SYSTEM_TREES:
        if _inside(path, tree):
            return f"is in {tree}, a system tree"
    if path.parent in SYSTEM_PARENTS:
        return f"is a system folder (directly in {path.parent})"
    if path.parent == HOME_PARENT:
        return "is a home folder"
    return None


def _root_rule(path: PurePosixPath) -> str | None:
    """Return why root may not install at the normal absolute ``path``, beyond :func:`_broken_rule`."""
    if path.parent in SHARED_TEMP:
        return (
            f"is directly in {path.parent}, which every user may write: the destination's folder "
            "must be one only root can change"
        )
    return None


def check_install_path(
    path: str, *, where: str, error: Refusal = artifact_error, as_root: bool = False
) -> PurePosixPath:
    """Return ``path`` as a normal absolute path if a venv may live there; raise ``error(where,
    reason)`` naming the path and the rule otherwise (the rules are in the module's docstring).
    ``as_root``: also the rules of a destination root installs into.

    Example: ``check_install_path("/openstack/venvs/keystone", where="config.install_path")``
    """
    if "\0" in path:
        raise error(where, "contains a NUL character")
    if not path.startswith("/"):
        raise error(where, f"must be an absolute path, not {path!r}")
    normal = normal_form(path)
    if path not in (normal, normal + "/"):
        raise error(where, f"{path!r} is not in normal form: it means {normal}; write that")
    why = _broken_rule(PurePosixPath(normal)) or (_root_rule(PurePosixPath(normal)) if as_root else None)
    if why is not None:
        raise error(where, f"{normal} {why}")
    return PurePosixPath(normal)


def check_disjoint(paths: Mapping[str, PurePosixPath]) -> None:
    """Raise RecipeError if one recipe's install path is, or contains, another's.

    ``paths`` maps each recipe file to its install path (as :func:`check_install_path` returned it).
    Example: ``check_disjoint({str(r.path): r.install_path for r in recipes})``
    """
    items = sorted(paths.items(), key=lambda item: (len(item[1].parts), item[0]))
    for i, (file, path) in enumerate(items):
        for other_file, other in items[i + 1 :]:
            if _inside(other, path):
                relation = "is also" if other == path else "contains"
                raise RecipeError(
                    f"{file}: venv.install-path", f"{path} {relation} the install path of {other_file}"
                )


def _install_error(where: str, reason: str) -> InstallError:
    return InstallError(f"refusing the {where}: {reason}")


def _located(path: Path) -> Path:
    """Return where ``path`` really is: its parent with symlinks resolved, and its own name.

    The destination itself is (or becomes) venvship's symlink; its parents are not venvship's.
    """
    absolute = Path(os.path.abspath(path))
    if absolute.parent == absolute:
        return absolute
    return Path(os.path.realpath(absolute.parent)) / absolute.name


def _is_mount_point(path: Path) -> bool:
    """Return True if something is mounted on ``path``; a bind mount from the same file system
    has its parent's device, which ``os.path.ismount`` goes by, so Linux's mount table decides."""
    if os.path.ismount(path):
        return True
    try:
        table = Path("/proc/self/mountinfo").read_bytes()
    except OSError:
        return False
    wanted = os.fsencode(path)
    for line in table.splitlines():
        fields = line.split(b" ")
        # Field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
        if len(fields) > 4 and re.sub(rb"\\([0-7]{3})", _octal, fields[4]) == wanted:
            return True
    return False


def _octal(match: re.Match[bytes]) -> bytes:
    return bytes([int(match.group(1), 8)])


def _homes() -> set[Path]:
    return {Path(normal_form(p.pw_dir)) for p in pwd.getpwall() if p.pw_dir.startswith("/")}


def check_destination(dest: Path, *, cache: Path, facts_dir: Path, others: Iterable[Path] = ()) -> Path:
    """Return ``dest`` (normal and absolute) if ``venv-pull`` may install there; raise InstallError
    naming it and the rule otherwise.

    Besides :func:`check_install_path`'s rules, on this host: the same rules for where ``dest``
    really is (after symlinks in its parents), no user's home folder, no mount point, not the
    cache or facts folder nor inside or around one, not inside or around another venv
    destination of ``others`` (the destinations recorded in the cache; ``dest`` itself may be
    among them).

    Example: ``check_destination(Path("/openstack/venvs/keystone"), cache=opts.cache,
    facts_dir=opts.facts_dir, others=[d for _, d, _ in cachestore.recorded_dests(opts.cache)])``
    """
    where = f"destination {dest}"
    root = os.geteuid() == 0
    given = Path(check_install_path(str(dest), where=where, error=_install_error, as_root=root))
    real = _located(given)
    if real != given:
        check_install_path(str(real), where=where, error=_install_error, as_root=root)
    homes = _homes()
    for path in (given, real):
        if path in homes:
            raise _install_error(where, f"{path} is a user's home folder")
    if not real.is_symlink() and _is_mount_point(real):
        raise _install_error(where, f"{real} is a mount point")
    for what, folder in (("venv-pull's cache", cache), ("the facts folder", facts_dir)):
        other = Path(os.path.realpath(folder))
        if _inside(real, other):
            raise _install_error(where, f"{real} is in {what} {other}")
        if _inside(other, real):
            raise _install_error(where, f"{real} contains {what} {other}")
    for item in others:
        other = _located(item)
        if other in (given, real):
            continue
        if _inside(real, other):
            raise _install_error(where, f"{real} is inside the venv destination {other}")
        if _inside(other, real):
            raise _install_error(where, f"{real} contains the venv destination {other}")
    return given
