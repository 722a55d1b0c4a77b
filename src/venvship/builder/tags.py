"""What a set of wheel file names says about where they run: distro-bound, glibc floor."""

from __future__ import annotations

import re
from typing import Iterable

from packaging.utils import parse_wheel_filename

_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def is_distro_bound(filenames: Iterable[str]) -> bool:
    """True if any wheel is tagged ``linux_*``: built here, not portable beyond this distro."""
    return any(tag.platform.startswith("linux_") for f in filenames for tag in parse_wheel_filename(f)[3])


def glibc_floor(filenames: Iterable[str]) -> str:
    """Return the highest glibc any manylinux wheel needs (``"2.17"``), or ``""`` if none does."""
    floor = (0, 0)
    for f in filenames:
        needs = []
        for tag in parse_wheel_filename(f)[3]:
            m = _MANYLINUX.match(tag.platform)
            if m:
                needs.append((int(m.group(1)), int(m.group(2))))
            for legacy, ver in _LEGACY.items():
                if tag.platform.startswith(legacy + "_"):
                    needs.append(ver)
        if needs:
            # A wheel with several tags runs where any of them does: its own need is the lowest.
            floor = max(floor, min(needs))
    return f"{floor[0]}.{floor[1]}" if floor != (0, 0) else ""
