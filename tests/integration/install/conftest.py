"""Fixtures for venv-pull: tiny wheels, artifacts written into OCI layouts, and a CLI runner."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pytest

from venvship.artifact.documents import Fact, Index, Manifest, PlatformInfo, PythonInfo, VenvConfig, Wheel
from venvship.artifact.layerformat import LayerInfo
from venvship.builder.layers import Tool, make_layers
from venvship.builder.package import write_to_layout
from venvship.builder.pins import INSTALL_TOOLS, versions_for
from venvship.host.info import distro_key, go_arch
from venvship.oci.layout import Layout
from venvship.venvformat.record import hash_field as record_hash

SRC = Path(__file__).resolve().parents[3] / "src"
DISTRO_PYTHON = "/usr/bin/python3"


def make_wheel(
    out: Path,
    name: str,
    version: str,
    *,
    script: bool = False,
    body: str = "",
    extra: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Write a pure wheel whose package ``name`` has VERSION (optionally a console script).

    Written with zipfile rather than a build backend: fast, deterministic, and able to hold
    the hostile members some tests need (``extra``: member name → text or bytes).
    """
    out.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files: dict[str, str | bytes] = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n{body}\ndef main():\n    print(VERSION)\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: venvship-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/top_level.txt": f"{name}\n",
    }
    if script:
        files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{name}-cli = {name}:main\n"
    files.update(extra or {})
    data = {path: text.encode() if isinstance(text, str) else text for path, text in files.items()}
    record = "".join(f"{path},{record_hash(blob)},{len(blob)}\n" for path, blob in data.items())
    data[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, blob in data.items():
            zi = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, blob)
    return path


def wheel_of(path: Path, name: str | None = None) -> Wheel:
    data = path.read_bytes()
    dist, version = path.name.split("-")[:2]
    return Wheel(
        name=name or dist.replace("_", "-"),
        version=version,
        filename=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


@dataclass(frozen=True)
class Wheels:
    """Session-built wheels: demo 1.0 / 2.0 (demo 2.0 has a console script), helper 1.0, broken 1.0."""

    folder: Path
    demo1: Path
    demo2: Path
    helper: Path
    broken: Path
    tools: Path


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory, tool_wheels: Path) -> Wheels:
    out = tmp_path_factory.mktemp("wheels")
    return Wheels(
        folder=out,
        demo1=make_wheel(out, "demo", "1.0"),
        demo2=make_wheel(out, "demo", "2.0", script=True),
        helper=make_wheel(out, "helper", "1.0"),
        broken=make_wheel(out, "broken", "1.0", body="raise ImportError('broken on purpose')"),
        tools=tool_wheels,
    )


def python_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def python_abi(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('cp%d%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def make_config(
    *,
    lock: Sequence[Wheel],
    tools: Sequence[Wheel],
    name: str = "demo",
    version: str = "1.0",
    install_tool: str = "uv",
    python: str = DISTRO_PYTHON,
    install_path: str = "/nonexistent/venvs/demo",
    facts: Sequence[Fact] = (),
    symlink: Sequence[str] = (),
    distro: str | None = None,
    distro_bound: bool = False,
    glibc: str = "2.17",
    architecture: str | None = None,
    abi: str | None = None,
    distro_packages: Sequence[str] = (),
    pip_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    requirements: Sequence[str] | None = None,
) -> VenvConfig:
    return VenvConfig(
        name=name,
        version=version,
        recipe_digest="sha256:" + "0" * 64,
        install_path=install_path,
        python=PythonInfo(
            implementation="cpython", version="3", abi=abi or python_abi(python), executable=python
        ),
        platform=PlatformInfo(
            os="linux",
            architecture=architecture or go_arch(),
            distro=distro or distro_key(),
            glibc=glibc,
            distro_bound=distro_bound,
        ),
        lock=tuple(lock),
        tools=tuple(tools),
        install_tool=install_tool,
        requirements=tuple(requirements if requirements is not None else (w.name for w in lock)),
        constraints=(),
        global_constraints=(),
        distro_package_state="present",
        distro_cache_valid_time=600,
        install_distro_packages=tuple(distro_packages),
        install_pip_args=tuple(pip_args),
        install_env=dict(env or {}),
        symlink_system_packages=tuple(symlink),
        facts=tuple(facts),
        builder={"test": "1"},
        provenance={},
    )


def with_layers(
    config: VenvConfig, files: dict[str, Path], *, python: str, work: Path
) -> tuple[VenvConfig, dict[str, Path]]:
    """Return ``config`` with ready-to-run layers made by the build side's own code, and ``files``
    (digest → file) with theirs; ``config``'s install tool lays them out."""
    tool = next(w for w in config.tools if w.name == config.install_tool)
    made, layer_files = make_layers(
        config.lock,
        files,
        python=python,
        tool=Tool(name=config.install_tool, version=tool.version, wheel=files[tool.digest]),
        cache=work / "layer-cache",
        workdir=work / "layer-work",
    )
    return dataclasses.replace(config, layers=made), {**files, **layer_files}


@dataclass(frozen=True)
class Artifacts:
    """Writes artifacts into one OCI layout directory and returns their references."""

    root: Path
    wheels: Wheels

    def tool(self, kind: str, *, python: str = DISTRO_PYTHON) -> tuple[Wheel, Path]:
        """Return venvship's pinned ``kind`` wheel (pip or uv) for ``python``."""
        version = versions_for(python_version(python), INSTALL_TOOLS)[kind]
        path = next(self.wheels.tools.glob(f"{kind}-{version}-*.whl"))
        return wheel_of(path), path

    def config(self, ref: str) -> VenvConfig:
        """Return the config of the (only) platform of the artifact ``ref`` wrote."""
        layout = Layout(self.root)
        name_tag = ref.rsplit(":", 2)
        index = Index.from_bytes(layout.read_blob(layout.resolve(f"{name_tag[1]}:{name_tag[2]}").digest))
        manifest = Manifest.from_bytes(layout.read_blob(index.manifests[0].digest))
        return VenvConfig.from_bytes(layout.read_blob(manifest.config.digest))

    def layer(self, ref: str, name: str) -> LayerInfo:
        """Return the ready-to-run layer of distribution ``name`` in artifact ``ref``."""
        layers = self.config(ref).layers
        assert layers is not None
        return next(d for d in layers.distributions if d.name == name)

    def write(
        self,
        wheel_paths: Sequence[Path],
        *,
        install_tool: str = "uv",
        layers: bool = True,
        layer_python: str | None = None,
        **kw: Any,
    ) -> str:
        """Write an artifact locking ``wheel_paths``, with ready-to-run layers made by the build
        side's own code (``layers=False``: wheels only; ``layer_python``: the interpreter that makes
        them, default the artifact's); return its ``oci:`` reference (the index tag)."""
        python = kw.get("python", DISTRO_PYTHON)
        tool, tool_path = self.tool(install_tool, python=python)
        lock = [wheel_of(p) for p in wheel_paths]
        config = make_config(lock=lock, tools=[tool], install_tool=install_tool, **kw)
        files = {w.digest: p for w, p in zip(lock, wheel_paths)}
        files[tool.digest] = tool_path
        if layers:
            config, files = with_layers(config, files, python=layer_python or python, work=self.root.parent)
        write_to_layout(Layout.create(self.root), config, files)
        return f"oci:{self.root}:{config.name}:{config.version}"


@pytest.fixture
def artifacts(tmp_path: Path, wheels: Wheels) -> Artifacts:
    return Artifacts(root=tmp_path / "oci", wheels=wheels)


@dataclass(frozen=True)
class Pull:
    """Runs ``python -m venvship.cli.venv_pull_main`` as a real process against per-test paths."""

    tmp: Path
    dest: Path
    cache: Path
    facts: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(SRC)
        # The host's hostile settings on purpose: the installer must build its child env itself.
        env["PIP_FIND_LINKS"] = "/opt/wheels"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(extra or {})
        return env

    def argv(self, command: str, *args: str, defaults: bool = True) -> list[str]:
        argv = [sys.executable, "-m", "venvship.cli.venv_pull_main", command, *args]
        if defaults and command == "install":
            argv += [
                "--dest",
                str(self.dest),
                "--cache",
                str(self.cache),
                "--facts-dir",
                str(self.facts),
                "--no-distro-packages",
            ]
        return argv

    def __call__(
        self,
        command: str,
        *args: str,
        ok: bool = True,
        env: dict[str, str] | None = None,
        defaults: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(command, *args, defaults=defaults),
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=180,
        )
        if ok and proc.returncode != 0:
            raise AssertionError(
                f"venv-pull {command} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def install(self, ref: str, *args: str, **kw: Any) -> dict[str, Any]:
        proc = self("install", ref, "--json", *args, **kw)
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def python(self, code: str, *, dest: Path | None = None) -> str:
        proc = subprocess.run(
            [str((dest or self.dest) / "bin" / "python"), "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return proc.stdout.strip()


@pytest.fixture
def host_folder(tmp_path: Path) -> Iterator[Path]:
    """Return a folder for an interpreter (or its wrapper) that venv-pull may run as root: no folder
    above one may be writable by others, not even a sticky /tmp (trust.host_python), so as root it
    is made under /var/lib, not under the tests' folder in /tmp."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    base = Path("/var/lib/venvship-tests")  # a home may itself sit in /tmp (as in CI)
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="host-", dir=base))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pull(tmp_path: Path) -> Pull:
    return Pull(
        tmp=tmp_path, dest=tmp_path / "venvs" / "demo", cache=tmp_path / "cache", facts=tmp_path / "facts"
    )


def tree_snapshot(*roots: Path) -> dict[str, tuple[float, int]]:
    """Return path → (mtime, size) of everything under ``roots`` (links not followed), but lock
    files: every run that takes one writes its PID into it."""
    snap: dict[str, tuple[float, int]] = {}
    for root in roots:
        if not os.path.lexists(root):
            continue
        snap[str(root)] = (os.lstat(root).st_mtime, os.lstat(root).st_size)
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                if name.endswith(".lock"):
                    continue
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                snap[path] = (st.st_mtime, st.st_size)
    return snap


def big_wheel(out: Path, name: str, megabytes: float) -> Path:
    """Return a wheel whose package holds ``megabytes`` of data that does not compress."""
    data = base64.b64encode(os.urandom(int(megabytes * (1 << 20) * 3 / 4))).decode()
    return make_wheel(out, name, "1.0", extra={f"{name}/data.txt": data})
