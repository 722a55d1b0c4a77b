"""The one subprocess helper: argv lists only, logged, output captured, typed error on failure, and
a time limit on every child (each kind of child has its own, which an environment variable changes)."""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import subprocess
from pathlib import Path
from typing import Collection, Iterator, Literal, Mapping, Sequence

from ._log import logger
from .errors import ProcessError, ProcessTimeout, VenvshipError

Kind = Literal[
    "probe", "venv", "install", "compile", "health", "distro", "resolve", "download", "build", "other"
]

# Generous: a slow host or a large venv never reaches them, but a hung child (a stuck mirror, a
# check that waits for input) cannot hold a lock for ever. VENVSHIP_TIMEOUT_<KIND> (seconds; 0 for
# none) changes one; docs/reference/cli.md lists them.
TIMEOUTS: Mapping[Kind, tuple[float, str]] = {
    "probe": (120, "a query"),  # interpreter probes, dpkg/rpm queries, credential helpers
    "venv": (600, "creating a venv"),
    "install": (3600, "the install tool"),  # pip or uv installing into a venv
    "compile": (3600, "compiling bytecode"),
    "health": (600, "the health check"),
    "distro": (3600, "the package manager"),  # apt-get, dnf
    "resolve": (3600, "resolving"),
    "download": (3600, "downloading wheels"),
    "build": (7200, "a wheel build"),  # one sdist or VCS checkout: a big C++ extension takes long
    "other": (7200, "a command"),
}


def timeout_variable(kind: Kind) -> str:
    """Return the environment variable that sets the time limit of children of ``kind``."""
    return f"VENVSHIP_TIMEOUT_{kind.upper()}"


def time_limit(kind: Kind) -> float | None:
    """Return the seconds a child of ``kind`` may run (None: no limit, when its variable is 0).

    Example: ``time_limit("health")`` → ``600.0`` (or ``$VENVSHIP_TIMEOUT_HEALTH``)
    """
    variable = timeout_variable(kind)
    text = os.environ.get(variable, "").strip()
    if not text:
        return TIMEOUTS[kind][0]
    try:
        seconds = float(text)
    except ValueError:
        raise VenvshipError(f"{variable}={text!r}: not a number of seconds") from None
    if seconds < 0 or seconds != seconds:
        raise VenvshipError(f"{variable}={text!r}: not a number of seconds")
    return seconds or None


def child_env(changes: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Return a copy of this process's environment with ``changes`` applied (``None`` removes)."""
    env = dict(os.environ)
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


# What a child that root starts on a target gets of this process's environment, whatever else the
# caller holds (tokens, proxy passwords, cloud keys): it names nothing a child runs or reads code from.
ALLOWED_ENV = frozenset({"PATH", "LANG", "TZ"})

# The proxies a child that reaches the network honours (pip, uv, apt, dnf).
PROXY_VARIABLES = frozenset(
    {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}
)

# PATH for root's own children: the system's, never the caller's.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Where such a child starts: a folder no other user can write (``-m`` and ``-c`` would import from
# the working directory otherwise, and a relative path would be resolved against it).
ISOLATED_CWD = Path("/")


def allowed_env(extra: Mapping[str, str] | None = None, *, keep: Collection[str] = ()) -> dict[str, str]:
    """Return :data:`ALLOWED_ENV`, ``LC_*`` and ``keep`` from this process's environment, then ``extra``.

    Example: ``allowed_env({"FOO": "1"})`` → ``{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "FOO": "1"}``
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ALLOWED_ENV or key.startswith("LC_") or key in keep
    }
    env.update(extra or {})
    return env


def python_argv(
    python: str | os.PathLike[str], *args: str | os.PathLike[str], site: bool = True
) -> list[str | os.PathLike[str]]:
    """Return the argv of an isolated Python child: ``-I`` (no PYTHON* variables, no user site, no
    working directory on sys.path), and ``-S`` too where nothing of site is needed.

    Example: ``python_argv("/usr/bin/python3", "-m", "venv", dest)`` → ``[…, "-I", "-m", "venv", dest]``
    """
    return [python, "-I", *(() if site else ("-S",)), *args]


# Dependencies' build code (setup.py, build backends, .pth files) runs in these children. It must
# not read this process's secrets (an env:// signing key, a registry password) through
# /proc/<pid>/environ or /proc/<pid>/mem: this process turns non-dumpable, which the kernel makes
# readable only with CAP_SYS_PTRACE, and a child started as root drops every capability.
_PR_SET_DUMPABLE = 4
_DROP_CAPS = (
    "setpriv", "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--",
)  # fmt: skip


def hide_process() -> None:
    """Make this process's memory and environment unreadable to its children (and same-user code).

    Raises VenvshipError when the kernel refuses: building with secrets in reach is worse than failing.
    """
    import ctypes  # here: only builds run untrusted code, and venv-pull's every run would load it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        error = os.strerror(ctypes.get_errno())
        raise VenvshipError(f"cannot hide this process from dependency build code (prctl: {error})")


def _untrusted_argv(args: list[str], as_user: tuple[int, int] | None, prelude: str | None) -> list[str]:
    hide_process()
    if os.geteuid() != 0:
        return args
    if as_user is None:
        return [*_DROP_CAPS, *args]
    # A pid namespace of its own: when the child (its pid 1) ends, the kernel kills every process
    # it left behind, so nothing the build code started outlives it (a double fork included).
    uid, gid = as_user
    # --pdeathsig: unshare's --kill-child asks the kernel to kill its child when unshare dies, which
    # the kernel forgets when the child changes its user; set again once it has, it ends the child
    # (and with it the namespace) when a time limit kills unshare, even if the build code took the
    # child out of the process group that is killed.
    user = (f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--pdeathsig=KILL")
    ns = ["unshare", "--pid", "--fork", "--kill-child"]
    if prelude:  # root's own setup in a mount namespace of the child's, before it drops to the user
        ns += ["--mount", "sh", "-c", f'set -e\n{prelude}\nexec "$@"', "sh"]
    return [*ns, _DROP_CAPS[0], *user, *_DROP_CAPS[1:], *args]


# Secrets this process was handed (a registry password, a signing key and its password). They
# often sit in its environment as well, under names venvship cannot know (CI_REGISTRY_PASSWORD,
# CI_JOB_TOKEN, REGISTRY_PASSWORD): children that may run a dependency's code get no variable
# holding one. Process-wide on purpose, as hide_process is: every thread's children are covered.
_WITHHELD: set[str] = set()


def withhold(*secrets: str) -> None:
    """Keep every environment variable whose value is one of ``secrets`` from untrusted children.

    Example: ``withhold(password)`` before a build whose job environment holds the password.
    """
    _WITHHELD.update(s.strip() for s in secrets if s and s.strip())


def _untrusted_env(env: Mapping[str, str] | None) -> dict[str, str]:
    source = os.environ if env is None else env
    return {key: value for key, value in source.items() if value.strip() not in _WITHHELD}


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
    kind: Kind = "other",
    untrusted: bool = False,
    as_user: tuple[int, int] | None = None,
    prelude: str | None = None,
    merge_stderr: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, capturing stdout and stderr together; raise ProcessError if it fails.

    ``secret_output`` keeps the output out of the log and of the error (credential helpers).
    ``pass_fds``: descriptors the child inherits (default: those of the enclosing :func:`lend_fds`).
    ``user``: (uid, gid) the child runs as, with no supplementary groups. ``kind``: what the child
    is, which sets its time limit (:func:`time_limit`); when it runs out, the child's whole process
    group is killed and ProcessTimeout raised. ``untrusted``: the child may run a dependency's code,
    which must not reach this process's secrets (see :func:`hide_process` and :func:`withhold`);
    ``as_user``: as root, such a child runs as this (uid, gid) in a pid namespace of its own, whose
    processes all die with it; ``prelude``: shell lines root runs first in a mount namespace of
    the child's own (quoted by the caller). ``merge_stderr=False``: stdout alone is the result (a report on a
    pipe); stderr goes into the log and, on failure, the error.

    Example: ``out = run(["dpkg-query", "-W", "python3"], kind="probe").stdout``
    """
    args = [os.fspath(a) for a in argv]
    if untrusted:
        args, env = _untrusted_argv(args, as_user, prelude), _untrusted_env(env)
    timeout = time_limit(kind)
    fds = _LENT_FDS.get() if pass_fds is None else tuple(pass_fds)
    logger.debug("running: %s", " ".join(args))
    try:
        child = subprocess.Popen(
            args,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            text=True,
            pass_fds=fds,
            start_new_session=timeout is not None,  # its own process group, killed whole on a timeout
            user=user[0] if user is not None else None,
            group=user[1] if user is not None else None,
            extra_groups=[] if user is not None else None,
        )
    except OSError as exc:
        raise ProcessError(args, 127, str(exc)) from exc
    out, err = _communicate(child, stdin, kind=kind, secret_output=secret_output)
    proc = subprocess.CompletedProcess(args, child.returncode, out, err)
    told = out if merge_stderr else err
    if told and not secret_output:
        logger.debug("%s", told.rstrip())
    if check and proc.returncode != 0:
        raise ProcessError(args, proc.returncode, "" if secret_output else told or "")
    return proc


def _communicate(
    child: subprocess.Popen[str], stdin: str | None, *, kind: Kind, secret_output: bool
) -> tuple[str, str | None]:
    """Return ``child``'s stdout and stderr (None: merged into stdout) once it ends; kill its
    process group at its kind's time limit."""
    timeout = time_limit(kind)
    try:
        out, err = child.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        try:
            out, _ = child.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a grandchild that left the group holds the pipe open
            child.wait()
            for pipe in (child.stdin, child.stdout, child.stderr):
                if pipe is not None:
                    pipe.close()  # ours to close: the grandchild keeps its own end
            out = ""
        if out and not secret_output:
            logger.debug("%s", out.rstrip())
        assert timeout is not None
        what = TIMEOUTS[kind][1]
        args = [str(a) for a in child.args] if isinstance(child.args, list) else [str(child.args)]
        raise ProcessTimeout(args, seconds=timeout, what=what, variable=timeout_variable(kind)) from None
    except BaseException:
        _kill_group(child)  # ^C reaches only this process: its children are in their own group
        child.wait()
        raise
    return out, err


def _kill_group(child: subprocess.Popen[str]) -> None:
    """Kill ``child``'s process group (its own when it has a time limit), else the child alone."""
    try:
        if os.getpgid(child.pid) == child.pid:
            os.killpg(child.pid, signal.SIGKILL)
            return
    except ProcessLookupError:
        return
    child.kill()
