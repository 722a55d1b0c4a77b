"""The one subprocess helper: argv lists only, logged, output captured, typed error on failure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from ._log import logger
from .errors import ProcessError


def child_env(changes: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Return a copy of this process's environment with ``changes`` applied (``None`` removes)."""
    env = dict(os.environ)
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    stdin: str | None = None,
    secret_output: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, capturing stdout and stderr together; raise ProcessError if it fails.

    ``secret_output`` keeps the output out of the log and of the error (credential helpers).

    Example: ``out = run(["dpkg-query", "-W", "python3"]).stdout``
    """
    args = [os.fspath(a) for a in argv]
    logger.debug("running: %s", " ".join(args))
    try:
        proc = subprocess.run(
            args,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise ProcessError(args, 127, str(exc)) from exc
    if proc.stdout and not secret_output:
        logger.debug("%s", proc.stdout.rstrip())
    if check and proc.returncode != 0:
        raise ProcessError(args, proc.returncode, "" if secret_output else proc.stdout or "")
    return proc
