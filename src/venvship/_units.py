"""Sizes as people read them (stdlib only, both sides)."""

from __future__ import annotations


def human_size(n: int) -> str:
    """Return ``n`` bytes as people read them.

    Example: ``human_size(12_700_000)`` → ``"12.1 MiB"``
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
