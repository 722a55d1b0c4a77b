"""The install pip-args an artifact may carry: an allow-list per install tool.

pip or uv runs as root on every target with these arguments, so an artifact may only change how
chatty the tool is and how patient; where files go, what is installed, from where, and bytecode
are venv-pull's. (Build pip-args run on the build host, under its operator: not checked.)
Stdlib only: the recipe loader and ``venv-pull`` check the same list.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator, Mapping, Optional, Sequence, Tuple

from .jsondoc import Refusal, artifact_error

INSTALL_TOOLS = ("pip", "uv")

_COUNT = re.compile(r"-(?:q+|v+)")  # -q, -qq, -vvv
_WHOLE = re.compile(r"\d{1,6}")
_SECONDS = re.compile(r"\d{1,6}(?:\.\d{1,3})?")

Value = Optional[Callable[[str], object]]  # None: a flag; else a check of the option's value


def _one_of(*choices: str) -> Callable[[str], object]:
    return lambda value: value in choices


_ALLOWED: Mapping[str, Mapping[str, Value]] = {
    "pip": {
        "-q": None,
        "-v": None,
        "--quiet": None,
        "--verbose": None,
        "--no-color": None,
        "--no-warn-script-location": None,
        "--disable-pip-version-check": None,
        "--no-input": None,
        "--progress-bar": _one_of("on", "off", "raw"),
        "--retries": _WHOLE.fullmatch,
        "--timeout": _SECONDS.fullmatch,
    },
    "uv": {
        "-q": None,
        "-v": None,
        "--quiet": None,
        "--verbose": None,
        "--no-progress": None,
        "--link-mode": _one_of("copy", "hardlink", "clone"),
    },
}
_CHOICES_SHOWN = {"--progress-bar": "on|off|raw", "--link-mode": "copy|hardlink|clone"}

# Options venv-pull decides itself: the venv-pull option that does it instead, and whether the
# option takes a value.
_BYTECODE = "venv-pull compiles bytecode itself; use `venv-pull install --no-compile` to skip it"
_DEST = "use `venv-pull install --dest`"
_OFFLINE = (
    "venv-pull installs offline from the artifact's own wheels; indexes and wheel choices "
    "belong in [venv.build] pip-args"
)
_LOCKED = "venv-pull installs exactly the lock, with --no-deps and --require-hashes"
_WHAT = "the lock decides what is installed: use the recipe's packages and constraints"
_FRESH = "every install is a fresh generation; use `venv-pull install --rebuild` for a new one"
_NO_CACHE = "venv-pull installs without a cache"
_OWNED: Mapping[str, tuple[str, bool]] = {
    "--index-url": (_OFFLINE, True),
    "-i": (_OFFLINE, True),
    "--extra-index-url": (_OFFLINE, True),
    "--index": (_OFFLINE, True),
    "--default-index": (_OFFLINE, True),
    "--index-strategy": (_OFFLINE, True),
    "--find-links": (_OFFLINE, True),
    "-f": (_OFFLINE, True),
    "--trusted-host": (_OFFLINE, True),
    "--no-index": (_OFFLINE, False),
    "--offline": (_OFFLINE, False),
    "--no-binary": (_OFFLINE, True),
    "--only-binary": (_OFFLINE, True),
    "--prefer-binary": (_OFFLINE, False),
    "--no-build-isolation": (_OFFLINE, False),
    "--require-hashes": (_LOCKED, False),
    "--no-deps": (_LOCKED, False),
    "--requirement": (_WHAT, True),
    "-r": (_WHAT, True),
    "--constraint": (_WHAT, True),
    "-c": (_WHAT, True),
    "--editable": (_WHAT, True),
    "-e": (_WHAT, True),
    "--upgrade": (_FRESH, False),
    "-U": (_FRESH, False),
    "--force-reinstall": (_FRESH, False),
    "--reinstall": (_FRESH, False),
    "--ignore-installed": (_FRESH, False),
    "-I": (_FRESH, False),
    "--no-cache-dir": (_NO_CACHE, False),
    "--no-cache": (_NO_CACHE, False),
    "--cache-dir": (_NO_CACHE, True),
    "--log": ("use `venv-pull -v` to see the install tool's output", True),
    "--src": (_DEST, True),
    "--break-system-packages": (_DEST, False),
    "--no-compile": ("use `venv-pull install --no-compile`", False),
    "--compile": (_BYTECODE, False),
    "--compile-bytecode": (_BYTECODE, False),
    "--target": (_DEST, True),
    "-t": (_DEST, True),
    "--prefix": (_DEST, True),
    "--root": (_DEST, True),
    "--user": (_DEST, False),
    "--python": (_DEST, True),
    "-p": (_DEST, True),
    "--system": (_DEST, False),
}


def _option(arg: str) -> tuple[str, bool]:
    """Return the option name of ``arg`` and whether its value is attached (``--a=1``, ``-t/x``)."""
    if arg.startswith("--"):
        name, eq, _ = arg.partition("=")
        return name, bool(eq)
    return arg[:2], len(arg) > 2


def _allowed_text(tool: str) -> str:
    return ", ".join(
        f"{name} {_CHOICES_SHOWN.get(name, 'N')}" if check is not None else name
        for name, check in _ALLOWED[tool].items()
    )


def _refusal(arg: str, name: str, tool: str, owner: str | None) -> str:
    """Return why ``arg`` is refused: venv-pull's own, the other tool's, or not allowed at all."""
    if owner is not None:
        return f"{arg!r} is not allowed in install pip-args: {owner}"
    other = next((t for t in INSTALL_TOOLS if t != tool and name in _ALLOWED[t]), None)
    if other is not None:
        return (
            f"{arg!r} is a {other} option, and this venv installs with {tool} "
            f"({tool}'s allowed options: {_allowed_text(tool)})"
        )
    return f"{arg!r} is not allowed in install pip-args (allowed: {_allowed_text(tool)})"


Fault = Optional[Tuple[int, str]]  # the index of the argument at fault and why


def _scan(args: Sequence[str], tool: str) -> Iterator[tuple[int, int, Fault]]:
    """Yield ``(start, end, fault)`` per option: ``args[start:end]`` is the option and its value."""
    allowed = _ALLOWED[tool]
    i = 0
    while i < len(args):
        arg = args[i]
        name, attached = _option(arg)
        end, fault = i + 1, None
        if _COUNT.fullmatch(arg):
            pass
        elif arg.startswith("--") and name in allowed:
            check = allowed[name]
            if check is None:
                if attached:
                    fault = (i, f"{name} takes no value")
            else:
                at = i if attached else i + 1
                end = i + 1 if attached else min(i + 2, len(args))
                value = arg.partition("=")[2] if attached else "".join(args[i + 1 : end])
                if not value:
                    fault = (i, f"{name} needs a value")
                elif not check(value):
                    fault = (at, f"{value!r} is not a valid value for {name}")
        elif not arg.startswith("-"):
            fault = (i, f"{arg!r} is not an option: install pip-args hold options only")
        else:
            owned = _OWNED.get(name)
            # Dropped together (import-role): an option and its separate value, where it has one.
            takes_value = owned[1] if owned else i + 1 < len(args) and not args[i + 1].startswith("-")
            if takes_value and not attached:
                end = min(i + 2, len(args))
            fault = (i, _refusal(arg, name, tool, owned[0] if owned else None))
        yield i, end, fault
        i = end


def check_install_pip_args(
    args: Sequence[str], *, tool: str, where: str, error: Refusal = artifact_error
) -> tuple[str, ...]:
    """Return ``args`` if each is an allowed option of ``tool`` (``pip`` or ``uv``) with a valid
    value (``--opt=value`` or ``--opt value``); raise ``error(where[i], reason)`` at the first
    that is not, naming the venv-pull option to use where venv-pull owns it.

    Example: ``check_install_pip_args(["--progress-bar", "off"], tool="pip", where="config.install.pip_args")``
    """
    for _, _, fault in _scan(args, tool):
        if fault is not None:
            raise error(f"{where}[{fault[0]}]", fault[1])
    return tuple(args)


def split_install_pip_args(args: Sequence[str], *, tool: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Return the allowed options of ``args`` and the others (with their values), each with why;
    for ``import-role``, which turns a role's install args into a recipe's.

    Example: ``split_install_pip_args(["--no-compile", "-q"], tool="pip")[0] == ["-q"]``
    """
    kept: list[str] = []
    dropped: list[tuple[str, str]] = []
    for start, end, fault in _scan(args, tool):
        if fault is None:
            kept.extend(args[start:end])
        else:
            dropped.append((" ".join(args[start:end]), fault[1]))
    return kept, dropped
