"""What a set of wheel file names says about where they run: distro-bound, glibc or musl floor."""

from __future__ import annotations

import re
from typing import Callable, Iterable

from packaging.utils import parse_wheel_filename

_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_")
_MUSLLINUX = re.compile(r"^musllinux_(\d+)_(\d+)_")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def is_distro_bound(filenames: Iterable[str]) -> bool:
    """True if any wheel is tagged ``linux_*``: built here, not portable beyond this distro."""
    return any(tag.platform.startswith("linux_") for f in filenames for tag in parse_wheel_filename(f)[3])


def _glibc_need(platform_tag: str) -> tuple[int, int] | None:
    m = _MANYLINUX.match(platform_tag)
    if m:
        return int(m.group(1)), int(m.group(2))
    for legacy, ver in _LEGACY.items():
        if platform_tag.startswith(legacy + "_"):
            return ver
    return None


def _musl_need(platform_tag: str) -> tuple[int, int] | None:
    m = _MUSLLINUX.match(platform_tag)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _floor(filenames: Iterable[str], need_of: Callable[[str], tuple[int, int] | None]) -> str:
    floor = (0, 0)
    for f in filenames:
        needs = [n for tag in parse_wheel_filename(f)[3] if (n := need_of(tag.platform)) is not None]
        if needs:
            # A wheel with several tags runs where any of them does: its own need is the lowest.
            floor = max(floor, min(needs))
    return f"{floor[0]}.{floor[1]}" if floor != (0, 0) else ""


def glibc_floor(filenames: Iterable[str]) -> str:
    """Return the highest glibc any manylinux wheel needs (``"2.17"``), or ``""`` if none does."""
    return _floor(filenames, _glibc_need)


def musl_floor(filenames: Iterable[str]) -> str:
    """Return the highest musl any musllinux wheel needs (``"1.2"``), or ``""`` if none does.

    It belongs in the ``io.venvship.musl`` annotation, as glibc_floor's in ``io.venvship.glibc``:
    venv-pull refuses such an entry on a glibc host and on a host with an older musl.
    """
    return _floor(filenames, _musl_need)
