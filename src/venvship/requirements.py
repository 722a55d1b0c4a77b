"""Requirement and constraint lines as recipes give them: PEP 508 requirements (the bare
``git+URL@sha#egg=name`` form too), constraint files beside the recipe, conflicting pins.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import RecipeError

# The bare form OpenStack-Ansible used for years: git+URL@sha#egg=name[&subdirectory=...]
_VCS = re.compile(r"^(?P<url>(?:git|hg|svn|bzr)\+[^\s#]+)#(?P<fragment>\S+)$")
CONSTRAINT_FILE_OPTION = re.compile(r"^(-c|--constraint|-r|--requirement)(?:\s+|=)(?P<path>\S+)$")


def normalize_requirement(text: str, where: str) -> str:
    """Return ``text`` as a PEP 508 requirement; ``git+URL@sha#egg=name`` becomes ``name @ git+URL@sha``."""
    vcs = _VCS.match(text)
    parts = vcs.group("fragment").split("&") if vcs else []
    names = [p[4:] for p in parts if p.startswith("egg=")]
    if vcs and names:
        # Other fragment parts (subdirectory=) still matter to pip; only egg= becomes the name.
        rest = "&".join(p for p in parts if not p.startswith("egg="))
        text = f"{names[0]} @ {vcs.group('url')}" + (f"#{rest}" if rest else "")
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        # packaging's message goes on with the text and a caret line; errors are one line.
        reason = str(exc).splitlines()[0]
        raise RecipeError(where, f"invalid requirement {text!r}: {reason}") from exc
    return text


def constraint_line(folder: Path) -> Callable[[str, str], str]:
    """Return a check for one constraints line: local constraint files must exist (made absolute
    against ``folder``), other pip options pass as given, the rest must be requirements.
    """

    def check(line: str, where: str) -> str:
        opt = CONSTRAINT_FILE_OPTION.match(line)
        if opt:
            target = opt.group("path")
            if "://" in target:
                return line
            path = (folder / target).resolve()
            if not path.is_file():
                raise RecipeError(where, f"constraints file not found: {target} (looked at {path})")
            return f"{opt.group(1)} {path}"
        if line.startswith("-"):
            return line  # other pip options pass through verbatim
        return normalize_requirement(line, where)

    return check


def check_pins(lines: list[tuple[str, str]]) -> None:
    """Refuse two inline ``==`` pins of one distribution that disagree; ``lines`` are (where, line)."""
    pins: dict[str, tuple[str, str]] = {}
    for where, line in lines:
        if line.startswith("-"):
            continue
        req = Requirement(line)
        exact = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if req.marker is not None or not exact:
            continue
        name = canonicalize_name(req.name)
        if name in pins and pins[name][1] != exact[0]:
            other_where, other = pins[name]
            raise RecipeError(
                where, f"conflicting pins for {req.name}: {exact[0]} here, {other} at {other_where}"
            )
        pins[name] = (where, exact[0])
