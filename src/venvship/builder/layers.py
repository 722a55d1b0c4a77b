"""Ready-to-run layers: install each wheel of a lock once, here, with the recipe's install tool and
interpreter, compile its bytecode, and pack what it wrote as one reproducible layer per distribution.

Targets then only unpack (DESIGN §1, §4). A layer depends on nothing but its wheel, the install
tool and the interpreter, so layers are kept in the build cache under those: a warm build makes
none, and a changed lock makes only the new distributions' layers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .._fsutil import atomic_write, mark_used
from .._log import logger
from .._process import child_env, run
from ..artifact.documents import Wheel
from ..artifact.layerformat import DEFAULT_EPOCH, FORMAT, PREFIX, LayerInfo, Layers
from ..errors import BuildError, ProcessError
from ..venvformat.bytecode import compile_bytecode
from .layerpack import neutralise, owners_of, pack_layer, source_of
from .wheels import file_sha256

_PROBE = (
    "import importlib.util as u, sys, sysconfig; "
    "print(sys.implementation.cache_tag or ''); print(u.MAGIC_NUMBER.hex()); "
    "print(sysconfig.get_path('purelib', 'venv' if 'venv' in sysconfig.get_scheme_names() else 'posix_prefix',"
    " vars={'base': '', 'platbase': ''}).lstrip('/')); print(sys.version.replace(chr(10), ' '))"
)


@dataclass(frozen=True)
class Tool:
    """The install tool that lays the wheels out: its name, version and wheel file."""

    name: str  # "pip" or "uv"
    version: str
    wheel: Path


@dataclass(frozen=True)
class _Interp:
    cache_tag: str
    magic: str
    site: str


def layer_epoch() -> int:
    """Return the mtime every file of a layer gets: SOURCE_DATE_EPOCH when set, else a constant."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() and int(value) < 2**32 else DEFAULT_EPOCH


def make_layers(
    lock: Sequence[Wheel],
    files: Mapping[str, Path],
    *,
    python: str,
    tool: Tool,
    cache: Path,
    workdir: Path,
) -> tuple[Layers, dict[str, Path]]:
    """Return the layers of ``lock`` (``files``: wheel digest → file) and layer digest → file.

    ``python``: the recipe's interpreter; ``cache``: the build cache (layers are kept in
    ``cache/layers``). Installs and compiles only the wheels whose layer is not kept yet.

    Example: ``make_layers(config.lock, files, python="/usr/bin/python3", tool=tool, cache=c, workdir=w)``
    """
    epoch = layer_epoch()
    workdir.mkdir(parents=True, exist_ok=True)
    interp, version = _probe(python)
    keys = {w.sha256: _key(w, tool, interp, python_version=version, epoch=epoch) for w in lock}
    kept = {sha: _load(cache, key) for sha, key in keys.items()}
    missing = [w for w in lock if kept[w.sha256] is None]
    if missing:
        logger.info("making %d ready-to-run layers (%s %s)", len(missing), tool.name, tool.version)
        made = _make(missing, files, python=python, tool=tool, interp=interp, epoch=epoch, workdir=workdir)
        for wheel in missing:
            info, path = made[wheel.sha256]
            kept[wheel.sha256] = _store(cache, keys[wheel.sha256], info, path)
    infos: list[LayerInfo] = []
    paths: dict[str, Path] = {}
    for wheel in lock:
        found = kept[wheel.sha256]
        assert found is not None
        infos.append(found[0])
        paths[found[0].digest] = found[1]
    layers = Layers(
        mtime=epoch,
        cache_tag=interp.cache_tag,
        magic=interp.magic,
        site=interp.site,
        distributions=tuple(infos),
    )
    return layers, paths


@contextlib.contextmanager
def _scratch_venv(python: str) -> Iterator[Path]:
    """Yield a fresh venv without pip at a short path (scripts get the plain ``#!path`` shebang)."""
    root = Path(tempfile.mkdtemp(prefix="vs", dir="/tmp"))
    try:
        venv = root / "v"
        try:
            run([python, "-m", "venv", "--without-pip", venv], env=_env())
        except ProcessError as exc:
            raise BuildError(f"{python}: cannot make a venv for the layers:\n{exc.output[-1500:]}") from exc
        yield venv
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _env() -> dict[str, str]:
    # The host's pip/uv settings must not reach an offline, hash-pinned install of the lock.
    changes: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("PIP_", "UV_"))}
    changes.update(
        {"PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1", "PYTHONPATH": None, "VIRTUAL_ENV": None}
    )
    return child_env(changes)


def _probe(python: str) -> tuple[_Interp, str]:
    """Return what the layers depend on of ``python``: bytecode tag and magic, site-packages in a
    venv, and its full version."""
    lines = run([python, "-I", "-c", _PROBE], env=_env()).stdout.splitlines()
    tag, magic, site, version = [*lines, "", "", "", ""][:4]
    return _Interp(cache_tag=tag.strip(), magic=magic.strip(), site=site.strip()), version.strip()


def _key(wheel: Wheel, tool: Tool, interp: _Interp, *, python_version: str, epoch: int) -> str:
    parts = [FORMAT, PREFIX, epoch, wheel.sha256, tool.name, tool.version, python_version, interp.site]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _load(cache: Path, key: str) -> tuple[LayerInfo, Path] | None:
    meta, blob = cache / "layers" / f"{key}.json", cache / "layers" / f"{key}.tar.gz"
    try:
        info = LayerInfo.from_json(json.loads(meta.read_text()), where=str(meta))
        if blob.stat().st_size != info.size:
            return None
    except (OSError, ValueError):
        return None
    except Exception:
        return None
    mark_used(blob)
    return info, blob


def _store(cache: Path, key: str, info: LayerInfo, path: Path) -> tuple[LayerInfo, Path]:
    folder = cache / "layers"
    folder.mkdir(parents=True, exist_ok=True)
    blob = folder / f"{key}.tar.gz"
    os.replace(path, blob)
    atomic_write(folder / f"{key}.json", json.dumps(info.to_json(), sort_keys=True).encode())
    return info, blob


def _make(
    wheels: Sequence[Wheel],
    files: Mapping[str, Path],
    *,
    python: str,
    tool: Tool,
    interp: _Interp,
    epoch: int,
    workdir: Path,
) -> dict[str, tuple[LayerInfo, Path]]:
    """Install ``wheels``, compile, and pack each distribution; return sha256 → layer.

    All of them go into one scratch venv. Where two write the same file, the one whose RECORD
    matches what is on disk owns it there; the others are made again, in a venv of their own,
    so that every layer holds its own distribution's files exactly.
    """
    out: dict[str, tuple[LayerInfo, Path]] = {}
    pending = list(wheels)
    while pending:
        with _scratch_venv(python) as scratch:
            done, pending = _round(
                pending, files, scratch=scratch, tool=tool, interp=interp, epoch=epoch, workdir=workdir
            )
        if not done:
            raise BuildError(f"cannot tell apart the files of {', '.join(w.filename for w in pending)}")
        out.update(done)
    return out


def _round(
    wheels: Sequence[Wheel],
    files: Mapping[str, Path],
    *,
    scratch: Path,
    tool: Tool,
    interp: _Interp,
    epoch: int,
    workdir: Path,
) -> tuple[dict[str, tuple[LayerInfo, Path]], list[Wheel]]:
    """Make the layers of ``wheels`` in ``scratch``; return those made and the wheels to make again."""
    before = set(_files(scratch))
    _install(wheels, files, scratch=scratch, tool=tool, workdir=workdir)
    written = sorted(set(_files(scratch)) - before)
    owners, clashed = owners_of(scratch, interp.site, wheels)
    relocated = neutralise(scratch, written, epoch=epoch)
    for rel in written:
        os.utime(scratch / rel, (epoch, epoch), follow_symlinks=False)
    if interp.cache_tag:
        compile_bytecode(
            scratch / "bin" / "python", scratch / interp.site, staged=scratch, final=Path(PREFIX), env=_env()
        )
    members: dict[str, list[str]] = {w.sha256: [] for w in wheels}
    for rel in sorted(set(_files(scratch)) - before):
        owner = owners.get(source_of(rel, interp.cache_tag))
        if owner is None:
            raise BuildError(f"installing the lock wrote {rel}, which no distribution's RECORD lists")
        members[owner].append(rel)
    out: dict[str, tuple[LayerInfo, Path]] = {}

    def pack(wheel: Wheel) -> None:
        target = workdir / f"{wheel.sha256}.tar.gz"
        pack_layer(scratch, members[wheel.sha256], target, epoch=epoch)
        info = LayerInfo(
            name=wheel.name,
            version=wheel.version,
            wheel_sha256=wheel.sha256,
            digest="sha256:" + file_sha256(target),
            size=target.stat().st_size,
            relocate=tuple(p for p in members[wheel.sha256] if p in relocated),
        )
        out[wheel.sha256] = (info, target)

    ready = [w for w in wheels if w.sha256 not in clashed]
    # zlib lets go of the GIL while it compresses: one thread per core.
    with ThreadPoolExecutor(max_workers=max(1, min(len(ready), os.cpu_count() or 1))) as pool:
        list(pool.map(pack, ready))
    return out, [w for w in wheels if w.sha256 in clashed]


def _files(venv: Path) -> Iterator[str]:
    """Yield the venv-relative paths of the regular files under ``venv`` (links not followed).

    Dot files at the venv's top are the install tool's own (uv's ``.lock``), not a distribution's.
    """
    for top, dirs, names in os.walk(venv):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
        for name in names:
            path = os.path.join(top, name)
            if not os.path.islink(path) and not (top == str(venv) and name.startswith(".")):
                yield os.path.relpath(path, venv).replace(os.sep, "/")


def _install(
    wheels: Sequence[Wheel], files: Mapping[str, Path], *, scratch: Path, tool: Tool, workdir: Path
) -> None:
    """Install ``wheels`` into ``scratch`` offline with ``tool``, no bytecode (compiled after)."""
    links = Path(tempfile.mkdtemp(prefix="links-", dir=workdir))
    for wheel in wheels:
        os.symlink(files[wheel.digest], links / wheel.filename)
    requirements = links / "requirements.txt"
    requirements.write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in wheels))
    common: list[str | os.PathLike[str]] = ["--no-index", "--find-links", links, "--require-hashes"]
    common += ["--no-deps", "-r", requirements]
    argv: list[str | os.PathLike[str]]
    if tool.name == "pip":
        # pip runs from its wheel (as a zip) with the venv's own interpreter.
        argv = [scratch / "bin" / "python", tool.wheel / "pip", "install", "--isolated", "--no-input"]
        argv += [
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-warn-conflicts",
            "--no-compile",
            *common,
        ]
    elif tool.name == "uv":
        argv = [_extract_uv(tool.wheel, workdir), "pip", "install", "--python", scratch / "bin" / "python"]
        argv += ["--offline", "--no-cache", "--link-mode", "copy", *common]
    else:
        raise BuildError(f"unknown install tool {tool.name!r}")
    try:
        run(argv, env=_env(), untrusted=True)
    except ProcessError as exc:
        raise BuildError(
            f"installing the lock with {tool.name} for its layers failed:\n{exc.output[-3000:]}"
        ) from exc


def _extract_uv(wheel: Path, workdir: Path) -> Path:
    target = workdir / "uv"
    with zipfile.ZipFile(wheel) as zf:
        member = next((n for n in zf.namelist() if n.endswith(".data/scripts/uv")), None)
        if member is None:
            raise BuildError(f"{wheel.name}: no .data/scripts/uv binary")
        with zf.open(member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    target.chmod(0o755)
    return target
