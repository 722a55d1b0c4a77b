"""The builder venv: one per (python, build requirements, constraints), holding pip and build tools."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .._fsutil import atomic_write, file_lock, mark_used
from .._log import logger
from .._process import ALLOWED_ENV, PROXY_VARIABLES
from ..errors import BuildError, ProcessError
from .sandbox import Sandbox, unsound


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


# What the builder's pip, and so every dependency's build code, gets of this process's environment
# (#20): what pip, git, compilers and Rust read. Never the rest: a CI job's tokens and cloud keys
# (AWS keys an ecr-login credential helper turns into the registry's password) are not build code's
# to read. The recipe's build env comes on top.
BUILD_ENV = frozenset(
    {
        *ALLOWED_ENV,
        *PROXY_VARIABLES,
        "HOME",  # replaced by the sandbox's own as root; a user's own pip.conf and netrc otherwise
        "TMPDIR",
        "SOURCE_DATE_EPOCH",
        *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"),
        *("CC", "CXX", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "MAKEFLAGS", "PKG_CONFIG_PATH"),
        *("CARGO_HOME", "RUSTUP_HOME", "RUSTFLAGS"),
    }
)
BUILD_ENV_PREFIXES = ("LC_", "PIP_")


def pip_env(base: Mapping[str, str], *, builder_bin: Path | None, ignore_pip_config: bool) -> dict[str, str]:
    """Return the environment for the builder's pip calls: :data:`BUILD_ENV` and ``PIP_*`` of this
    process's, then ``base`` (the recipe's build env)."""
    env = {k: v for k, v in os.environ.items() if k in BUILD_ENV or k.startswith(BUILD_ENV_PREFIXES)}
    env.update(base)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    if ignore_pip_config:  # venv_pip_upgrade_noconf: a broken site pip.conf must not break builds
        env["PIP_CONFIG_FILE"] = os.devnull
    if builder_bin is not None:
        # Build tools such as maturin are found on PATH, as the role does (eb2fd11).
        env["PATH"] = f"{builder_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


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


def ensure_builder(
    spec: BuilderSpec, *, cache: Path, fingerprint: str, sandbox: Sandbox, rebuild: bool = False
) -> Builder:
    """Return the builder venv for ``spec`` (``fingerprint`` names its inputs), creating it if
    missing, as ``sandbox``'s build code may run it: a copy it cannot change."""
    key = hashlib.sha256(json.dumps([spec.python, fingerprint, list(spec.bootstrap)]).encode()).hexdigest()[
        :16
    ]
    root = cache / "builders" / key
    marker = root / "venvship-builder.json"
    with file_lock(cache / "builders" / f"{key}.lock"):
        if rebuild and root.exists():
            shutil.rmtree(root)
        # A builder venv runs every later build's pip: one that another user could have changed
        # (an older venvship let build code write it) is made again, not reused.
        fault = unsound(root) if marker.is_file() else None
        if fault is not None:
            logger.warning("builder venv %s: %s may have been changed; making it again", root, fault)
        if fault is not None or not marker.is_file():
            _create(root, spec, sandbox)
        mark_used(marker)
        tools = json.loads(marker.read_text())["tools"]
        runnable = sandbox.mirror(root)
    return Builder(
        root=runnable,
        env=pip_env(spec.env, builder_bin=runnable / "bin", ignore_pip_config=spec.ignore_pip_config),
        tools=tools,
    )


def _create(root: Path, spec: BuilderSpec, sandbox: Sandbox) -> None:
    """Make the builder venv as the build user, then take it over: the build requirements' own
    build code runs while it is made, and none of it may change the venv afterwards."""
    logger.info("creating builder venv %s", root)
    made = sandbox.outbox("builder-venv") / "venv"
    penv = pip_env(spec.env, builder_bin=made / "bin", ignore_pip_config=spec.ignore_pip_config)
    try:
        # The interpreter itself, not the name or venv that leads to it: the new venv's python links
        # to what made it, and the build user may not reach a link's folder (a venv in root's own
        # 0700 folder) where it reaches the interpreter (sandbox exposes that, see _exposing).
        base = os.path.realpath(spec.python)
        sandbox.run([base, "-m", "venv", "--without-pip", made], env=penv, kind="venv")
        # pip goes in by a step of our own: venv runs ensurepip with its output hidden, so a full
        # disk would read "ensurepip returned non-zero exit status 1".
        python = made / "bin" / "python"
        sandbox.run([python, "-m", "ensurepip", "--upgrade", "--default-pip"], env=penv, kind="venv")
        pip: list[str | os.PathLike[str]] = [python, "-m", "pip", "install", "-q"]
        # The interpreter's bundled pip only installs venvship's pinned tools (under the global
        # constraints alone): it may be too old for the recipe's own lines (git+file URLs).
        sandbox.run([*pip, *spec.global_args, *spec.pip_args, *spec.bootstrap], env=penv, kind="install")
        sandbox.run(
            [*pip, *spec.constraint_args, *spec.pip_args, *spec.requirements], env=penv, kind="install"
        )
    except ProcessError as exc:
        raise BuildError(f"creating the builder venv failed:\n{exc}") from exc
    # Every process of the build code has ended (its pid namespace with it): the copy is final.
    sandbox.adopt(made, root)
    atomic_write(root / "venvship-builder.json", json.dumps({"tools": _tools(root)}, sort_keys=True).encode())


def _tools(root: Path) -> dict[str, str]:
    """Return the distributions installed in the venv at ``root``, read from their metadata files
    (no code of the venv runs for it)."""
    paths = [str(p) for p in sorted(root.glob("lib/python*/site-packages"))]
    return {
        str(d.metadata["Name"]).lower(): str(d.version)
        for d in importlib.metadata.distributions(path=paths)
        if d.metadata["Name"]
    }
