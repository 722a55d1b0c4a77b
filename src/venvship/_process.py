"""The one subprocess helper: argv lists only, logged, output captured, typed error on failure."""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import subprocess
from pathlib import Path
from typing import Iterator, Mapping, Sequence

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


_LENT_FDS: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("venvship_lent_fds", default=())


@contextlib.contextmanager
def lend_fds(*fds: int) -> Iterator[None]:
    """Pass ``fds`` to every child that :func:`run` starts inside this block.

    Used for lock files: a ``flock`` belongs to the open file description, so a child holding an
    inherited descriptor keeps the lock until it exits, even if this process is killed first.

    Example: ``with file_lock(path) as fd, lend_fds(fd): run(["pip", "install", ...])``
    """
    token = _LENT_FDS.set(_LENT_FDS.get() + fds)
    try:
        yield
    finally:
        _LENT_FDS.reset(token)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    stdin: str | None = None,
    secret_output: bool = False,
    pass_fds: Sequence[int] | None = None,
    user: tuple[int, int] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, capturing stdout and stderr together; raise ProcessError if it fails.

    ``secret_output`` keeps the output out of the log and of the error (credential helpers).
    ``pass_fds``: descriptors the child inherits (default: those of the enclosing :func:`lend_fds`).
    ``user``: (uid, gid) the child runs as, with no supplementary groups. ``timeout``: seconds
    after which the child's whole process group is killed and ProcessError raised (code -9).

    Example: ``out = run(["dpkg-query", "-W", "python3"]).stdout``
    """
    args = [os.fspath(a) for a in argv]
    fds = _LENT_FDS.get() if pass_fds is None else tuple(pass_fds)
    logger.debug("running: %s", " ".join(args))
    try:
        child = subprocess.Popen(
            args,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            pass_fds=fds,
            start_new_session=timeout is not None,  # its own process group, killed whole on a timeout
            user=user[0] if user is not None else None,
            group=user[1] if user is not None else None,
            extra_groups=[] if user is not None else None,
        )
    except OSError as exc:
        raise ProcessError(args, 127, str(exc)) from exc
    try:
        out, _ = child.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        raise ProcessError(args, -9, f"{out or ''}\nkilled after {timeout:g}s (timeout)") from None
    except BaseException:
        child.kill()
        child.wait()
        raise
    proc = subprocess.CompletedProcess(args, child.returncode, out, None)
    if proc.stdout and not secret_output:
        logger.debug("%s", proc.stdout.rstrip())
    if check and proc.returncode != 0:
        raise ProcessError(args, proc.returncode, "" if secret_output else proc.stdout or "")
    return proc
