"""The one place where venvship pins the tools it builds with and ships (never an interpreter's
bundled pip): the builder venv's pip, setuptools and wheel, and the install tool in the artifact.

Each pin is a requirement line whose marker picks the release for the recipe's interpreter (pip
26.1 and setuptools 83 left Python 3.9 behind). A recipe's global constraints that name one of
the tools win: its requirement goes unpinned then, and the constraint decides the version.
"""

from __future__ import annotations

from typing import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

PIP = ('pip==26.3; python_version >= "3.10"', 'pip==26.0.1; python_version < "3.10"')
SETUPTOOLS = ('setuptools==84.2.1; python_version >= "3.10"', 'setuptools==82.0.1; python_version < "3.10"')
WHEEL = ("wheel==0.48.0",)
UV = ("uv==0.13.9",)

BUILD_TOOLS: dict[str, tuple[str, ...]] = {"pip": PIP, "setuptools": SETUPTOOLS, "wheel": WHEEL}
INSTALL_TOOLS: dict[str, tuple[str, ...]] = {"pip": PIP, "uv": UV}


def constrained_names(global_constraints: Iterable[str]) -> set[str]:
    """Return the canonical names the global constraints pin (includes and options are not names)."""
    names: set[str] = set()
    for line in global_constraints:
        try:
            names.add(canonicalize_name(Requirement(line.split(" --", 1)[0]).name))
        except InvalidRequirement:
            continue  # a -c include or a pip option
    return names


def pinned(pins: dict[str, tuple[str, ...]], *, global_constraints: Iterable[str]) -> list[str]:
    """Return the requirement lines for ``pins``' tools: their pins, or the bare name of a tool
    the global constraints name.

    Example: ``pinned(BUILD_TOOLS, global_constraints=["pip==25.3"])`` →
    ``["pip", 'setuptools==84.2.1; python_version >= "3.10"', …, "wheel==0.48.0"]``
    """
    taken = constrained_names(global_constraints)
    out: list[str] = []
    for name, lines in pins.items():
        out.extend([name] if canonicalize_name(name) in taken else lines)
    return out


def versions_for(python_version: str, pins: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Return tool name → pinned version for an interpreter ``python_version`` (``"3.9"``).

    Example: ``versions_for("3.9", INSTALL_TOOLS)["pip"]`` → ``"26.0.1"``
    """
    env = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    out = {}
    for name, lines in pins.items():
        for line in lines:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                out[name] = next(iter(req.specifier)).version
    return out
