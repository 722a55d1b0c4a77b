"""Venv creation and the offline install of a lock, with pip or uv behind a small Protocol."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import os
import posixpath
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from .._process import child_env, run
from ..artifact import VenvConfig, Wheel
from ..distro import CA_BUNDLE
from ..errors import InstallError, ProcessError
from ..hostinfo import distro_family
from ..oci.layout import Layout
from .pull import check_wheel, extract_uv


def site_packages(venv: Path) -> Path:
    """Return the venv's ``lib/python3.X/site-packages``."""
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise InstallError(f"{venv}: no lib/python3*/site-packages")
    return found[0]


def create_venv(python: str, venv: Path, *, prompt: str) -> None:
    """Make a venv without pip at ``venv``; fall back to virtualenv where ``venv`` is missing.

    ``prompt``: what activate shows; without it, the staging folder's name would be shown.
    """
    env = install_env({})
    proc = run([python, "-m", "venv", "--without-pip", "--prompt", prompt, venv], env=env, check=False)
    if proc.returncode == 0:
        return
    if run([python, "-c", "import virtualenv"], env=env, check=False).returncode == 0:
        # --no-seed: no pip, setuptools or wheel (--no-wheel is deprecated, soon an error).
        run([python, "-m", "virtualenv", "--no-seed", "--prompt", prompt, venv], env=env)
        return
    raise InstallError(
        f"{python}: cannot make a venv (no venv module, no virtualenv):\n{proc.stdout[-1500:]}"
    )


def install_env(recipe_env: Mapping[str, str]) -> dict[str, str]:
    """Return the environment for installer children, built on purpose from this process's."""
    changes: dict[str, str | None] = {}
    for key in os.environ:
        # Host pip/uv settings (/etc/pip.conf extras, PIP_FIND_LINKS, UV_INDEX_URL ...) must not
        # leak into an offline, hash-pinned install; the recipe's own env is applied below.
        if key.startswith(("PIP_", "UV_")):
            changes[key] = None
    changes.update(
        {
            "PIP_CONFIG_FILE": os.devnull,  # ignore /etc/pip.conf and user config files
            "UV_NO_CONFIG": "1",  # likewise for uv.toml
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",  # offline: never ask PyPI
            "PYTHONPATH": None,  # would leak host packages into the new venv
            "PYTHONHOME": None,
            "PYTHONDONTWRITEBYTECODE": None,  # bytecode is compiled on purpose, see bytecode.py
            "VIRTUAL_ENV": None,
        }
    )
    ca = CA_BUNDLE.get(distro_family())
    if ca and os.path.exists(ca):
        # Only used if a recipe's pip-args reach the network; default to the distro's CAs.
        changes["REQUESTS_CA_BUNDLE"] = os.environ.get("REQUESTS_CA_BUNDLE", ca)
        changes["SSL_CERT_FILE"] = os.environ.get("SSL_CERT_FILE", ca)
    changes.update(recipe_env)
    return child_env(changes)


def requirements_text(lock: Sequence[Wheel]) -> str:
    """Return a hash-pinned requirements file: ``name==version --hash=sha256:...`` per lock entry."""
    return "".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in lock)


@dataclass(frozen=True)
class InstallJob:
    """One offline install: the target venv, the wheel folder, the requirements file."""

    venv: Path
    find_links: Path
    requirements: Path
    pip_args: tuple[str, ...]
    env: Mapping[str, str]


class Installer(Protocol):
    """Installs a locked requirements file into a venv, offline."""

    name: str

    def version(self) -> str: ...

    def install(self, job: InstallJob) -> None: ...


def _tool(config: VenvConfig, name: str) -> Wheel:
    for wheel in config.tools:
        if wheel.name.lower() == name:
            return wheel
    raise InstallError(f"artifact {config.name} {config.version}: no {name} wheel among its tools")


class PipInstaller:
    """pip run straight from the pip wheel carried in the artifact (no pip needed on the host)."""

    name = "pip"

    def __init__(self, cache: Layout, config: VenvConfig) -> None:
        self.wheel = _tool(config, "pip")
        self.cache = cache

    def version(self) -> str:
        return self.wheel.version

    def install(self, job: InstallJob) -> None:
        python = job.venv / "bin" / "python"
        argv: list[str | os.PathLike[str]] = [
            python,
            extract_pip(self.cache, self.wheel) / "pip",  # runs as a script folder, as from the wheel
            "install",
            "--isolated",  # ignore PIP_* env and config files, whatever the caller sets
            "--no-input",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-index",
            "--find-links",
            job.find_links,
            "--require-hashes",
            "--no-deps",  # the lock is the full closure
            # No dependency check after the install: the lock was resolved whole at build time, and
            # in an incremental generation the unchanged distributions may still be appearing.
            "--no-warn-conflicts",
            "--no-compile",  # compiled later, on all cores (bytecode.py)
            *job.pip_args,
            "-r",
            job.requirements,
        ]
        _run_install(argv, job)


class UvInstaller:
    """uv extracted from the uv wheel carried in the artifact."""

    name = "uv"

    def __init__(self, cache: Layout, config: VenvConfig) -> None:
        self.wheel = _tool(config, "uv")
        self.cache = cache

    def version(self) -> str:
        return self.wheel.version

    def install(self, job: InstallJob) -> None:
        uv = extract_uv(self.cache, self.wheel)
        argv: list[str | os.PathLike[str]] = [
            uv,
            "pip",
            "install",
            "--python",
            job.venv / "bin" / "python",
            "--offline",
            "--no-cache",  # leave no uv cache behind on the target
            "--no-index",
            "--find-links",
            job.find_links,
            "--require-hashes",
            "--no-deps",
            *job.pip_args,
            "-r",
            job.requirements,
        ]
        _run_install(argv, job)


def extract_pip(cache: Layout, wheel: Wheel) -> Path:
    """Return a folder holding the files of the pip ``wheel``, extracted once into ``<cache>/tools/<hex>/``.

    pip could run straight from the wheel (zipimport), but then Python compiles pip's modules at
    every run, about a second; from a folder their bytecode is cached beside them.
    """
    target = cache.root / "tools" / wheel.sha256
    if (target / "pip" / "__main__.py").is_file():
        return target
    blob = cache.blob_path(wheel.digest)
    check_wheel(blob, filename=wheel.filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{wheel.sha256[:12]}-", suffix=".tmp"))
    try:
        with zipfile.ZipFile(blob) as zf:
            zf.extractall(tmp)
        try:
            os.rename(tmp, target)  # complete or absent, never half there
        except OSError:
            if not (target / "pip" / "__main__.py").is_file():
                raise
            shutil.rmtree(tmp)  # a concurrent run extracted it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _run_install(argv: list[str | os.PathLike[str]], job: InstallJob) -> None:
    try:
        run(argv, env=job.env)
    except ProcessError as exc:
        raise InstallError(f"offline install into {job.venv} failed:\n{exc.output[-3000:]}") from exc


INSTALLERS: dict[str, Callable[[Layout, VenvConfig], Installer]] = {"pip": PipInstaller, "uv": UvInstaller}


def installer_for(config: VenvConfig, cache: Layout) -> Installer:
    """Return the installer the artifact asks for (``pip`` or ``uv``)."""
    kind = INSTALLERS.get(config.install_tool)
    if kind is None:
        raise InstallError(f"artifact {config.name}: unknown install tool {config.install_tool!r}")
    installer: Installer = kind(cache, config)
    return installer


def relocate(venv: Path, *, old: Path, new: Path) -> None:
    """Rewrite ``old`` to ``new`` in bin/ scripts and pyvenv.cfg, fixing RECORD hashes to match.

    Installers write absolute paths (shebangs, activate scripts); the generation is built under
    its ``.partial`` name and renamed once complete, so those paths must name the final folder.
    """
    before, after = os.fsencode(old), os.fsencode(new)
    changed: dict[Path, bytes] = {}
    candidates = [venv / "pyvenv.cfg", *sorted((venv / "bin").iterdir())]
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 4 << 20:
            continue
        data = path.read_bytes()
        if before not in data or b"\0" in data[:8192]:
            continue
        data = data.replace(before, after)
        replace_file(path, data, mode=path.stat().st_mode)
        changed[path] = data
    if changed:
        fix_records(site_packages(venv), changed)


def replace_file(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with a new file (new inode) holding ``data``: a temp file and one rename.

    Never an in-place write: the old file may be a hard link shared with another generation.
    No fsync: a generation is made durable as a whole, and a crash leaves a ``.partial`` to redo.
    """
    tmp = path.with_name(f".{path.name}.venvship-tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a killed run: never written through
    with open(tmp, "xb") as fh:
        fh.write(data)
    os.chmod(tmp, mode & 0o7777)
    os.replace(tmp, path)


def record_hash(data: bytes) -> str:
    """Return a RECORD hash field (``sha256=<urlsafe b64, no padding>``)."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fix_records(site: Path, changed: Mapping[Path, bytes]) -> None:
    """Give the RECORD rows of the ``changed`` files (path in the venv → new bytes) their new hash and size.

    A RECORD is replaced through a temp file and a rename, never rewritten in place: in an
    incremental generation it may be a hard link shared with the live generation.
    """
    # RECORD paths are relative to site-packages (bin/ scripts as ../../../bin/NAME): compared as
    # such, without resolving every row (a large venv has tens of thousands).
    wanted = {posixpath.normpath(os.path.relpath(path, site)): data for path, data in changed.items()}
    names = {posixpath.basename(rel) for rel in wanted}
    for record in site.glob("*.dist-info/RECORD"):
        text = record.read_text()
        if not any(name in text for name in names):
            continue
        rows = list(csv.reader(io.StringIO(text)))
        dirty = False
        for row in rows:
            if len(row) >= 3 and row[1]:
                data = wanted.get(posixpath.normpath(row[0]))
                if data is not None:
                    row[1], row[2] = record_hash(data), str(len(data))
                    dirty = True
        if dirty:
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(rows)
            replace_file(record, out.getvalue().encode(), mode=record.stat().st_mode)
