"""The builder venv: one per (python, build requirements, constraints), holding pip and build tools."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .._fsutil import atomic_write, file_lock, mark_used
from .._log import logger
from .._process import child_env, run
from ..errors import BuildError, ProcessError


@dataclass(frozen=True)
class Builder:
    """A ready builder venv: its python, the environment for pip, and the tool versions inside."""

    root: Path
    env: Mapping[str, str]
    tools: Mapping[str, str]

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def pip(self, *args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
        """Return the argv of ``pip`` in this builder with ``args``."""
        return [self.python, "-m", "pip", *args]


def pip_env(base: Mapping[str, str], *, builder_bin: Path | None, ignore_pip_config: bool) -> dict[str, str]:
    """Return the environment for the builder's pip calls."""
    changes: dict[str, str | None] = dict(base)
    # The recipe decides what pip sees; a stray virtualenv on PATH must not leak in.
    changes["VIRTUAL_ENV"] = None
    changes["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    changes["PIP_NO_INPUT"] = "1"
    if ignore_pip_config:  # venv_pip_upgrade_noconf: a broken site pip.conf must not break builds
        changes["PIP_CONFIG_FILE"] = os.devnull
    if builder_bin is not None:
        # Build tools such as maturin are found on PATH, as the role does (eb2fd11).
        changes["PATH"] = f"{builder_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    return child_env(changes)


@dataclass(frozen=True)
class BuilderSpec:
    """What goes into a builder venv.

    ``bootstrap``: the pinned pip, setuptools and wheel requirements, installed first under
    ``global_args`` alone; then ``requirements`` under ``constraint_args``.
    """

    python: str
    requirements: Sequence[str]
    constraint_args: Sequence[str]
    global_args: Sequence[str]
    bootstrap: Sequence[str]
    pip_args: Sequence[str]
    env: Mapping[str, str]
    ignore_pip_config: bool


def ensure_builder(spec: BuilderSpec, *, cache: Path, fingerprint: str, rebuild: bool = False) -> Builder:
    """Return the builder venv for ``spec`` (``fingerprint`` names its inputs), creating it if missing."""
    key = hashlib.sha256(json.dumps([spec.python, fingerprint, list(spec.bootstrap)]).encode()).hexdigest()[
        :16
    ]
    root = cache / "builders" / key
    marker = root / "venvship-builder.json"
    with file_lock(cache / "builders" / f"{key}.lock"):
        if rebuild and root.exists():
            shutil.rmtree(root)
        if not marker.is_file():
            _create(root, spec)
        mark_used(marker)
        tools = json.loads(marker.read_text())["tools"]
    return Builder(
        root=root,
        env=pip_env(spec.env, builder_bin=root / "bin", ignore_pip_config=spec.ignore_pip_config),
        tools=tools,
    )


def _create(root: Path, spec: BuilderSpec) -> None:
    # Built in place (venv scripts are not relocatable); the marker written last says it is whole.
    staging = root
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("creating builder venv %s", root)
    penv = pip_env(spec.env, builder_bin=staging / "bin", ignore_pip_config=spec.ignore_pip_config)
    try:
        # pip goes in by a step of our own: venv runs ensurepip with its output hidden, so a full
        # disk would read "ensurepip returned non-zero exit status 1".
        run([spec.python, "-m", "venv", "--without-pip", staging], env=penv, kind="venv")
        run(
            [staging / "bin" / "python", "-m", "ensurepip", "--upgrade", "--default-pip"],
            env=penv,
            kind="venv",
        )
        pip: list[str | os.PathLike[str]] = [staging / "bin" / "python", "-m", "pip", "install", "-q"]
        # The interpreter's bundled pip only installs venvship's pinned tools (under the global
        # constraints alone): it may be too old for the recipe's own lines (git+file URLs).
        run(
            [*pip, *spec.global_args, *spec.pip_args, *spec.bootstrap],
            env=penv,
            kind="install",
            untrusted=True,
        )
        run(
            [*pip, *spec.constraint_args, *spec.pip_args, *spec.requirements],
            env=penv,
            kind="install",
            untrusted=True,
        )
        listing: list[str | os.PathLike[str]] = [
            staging / "bin" / "python",
            "-m",
            "pip",
            "list",
            "--format=json",
        ]
        frozen = run(listing, env=penv, kind="probe").stdout
    except ProcessError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BuildError(f"creating the builder venv failed:\n{exc}") from exc
    tools = {p["name"].lower(): p["version"] for p in json.loads(frozen)}
    atomic_write(staging / "venvship-builder.json", json.dumps({"tools": tools}, sort_keys=True).encode())
