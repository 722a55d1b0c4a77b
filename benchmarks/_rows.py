"""Result rows: one measured case against its target, and the tables the report prints."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

from _procs import Stats

if sys.version_info >= (3, 11):
    pass
else:  # the project depends on tomli there
    pass


# -- result rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal from the issue, one of: venvship at least ``min_ratio`` times the baseline's speed; at
    most ``max_factor`` times the baseline's time; at most ``max_seconds`` of wall time; a peak RSS
    of at most ``max_mib``; at most ``max_added`` seconds more than the baseline (what a feature
    adds to the same command)."""

    min_ratio: float | None = None
    max_factor: float | None = None
    max_seconds: float | None = None
    max_mib: float | None = None
    max_added: float | None = None

    def text(self) -> str:
        if self.max_added is not None:
            return f"target: adds <= {self.max_added * 1000:g} ms"
        if self.min_ratio is not None:
            return f"target >= {self.min_ratio:g}x"
        if self.max_factor is not None:
            return f"target: at most {self.max_factor:g}x the baseline's"
        if self.max_mib is not None:
            return f"target: peak RSS <= {self.max_mib:g} MiB"
        return f"target <= {self.max_seconds:g} s"


@dataclass(frozen=True)
class Row:
    """One figure of venvship, next to its baseline measured in the same run."""

    section: str
    case: str
    ours: Stats
    ours_label: str = "venvship"
    base: Stats | None = None
    base_label: str = ""
    target: Target | None = None
    note: str = ""
    unit: str = "s"  # or "bytes": the figures are sizes, not wall times

    @property
    def ratio(self) -> float | None:
        """Baseline time / venvship time: above 1, venvship is faster (or moves more per second)."""
        if self.base is None or self.ours.median <= 0:
            return None
        return self.base.median / self.ours.median

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        if self.target.max_added is not None:
            assert self.base is not None
            return "PASS" if self.ours.median - self.base.median <= self.target.max_added else "MISS"
        if self.target.min_ratio is not None:
            return "PASS" if (self.ratio or 0) >= self.target.min_ratio else "MISS"
        if self.target.max_factor is not None:
            assert self.base is not None
            return "PASS" if self.ours.median <= self.target.max_factor * self.base.median else "MISS"
        if self.target.max_mib is not None:
            return "PASS" if self.ours.rss_kib <= self.target.max_mib * 1024 else "MISS"
        assert self.target.max_seconds is not None
        return "PASS" if self.ours.median <= self.target.max_seconds else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "case": self.case,
            "venvship": {"label": self.ours_label, **self.ours.as_json()},
            "baseline": {"label": self.base_label, **self.base.as_json()} if self.base else None,
            "ratio": round(self.ratio, 3) if self.ratio is not None else None,
            "target": self.target.text() if self.target else None,
            "verdict": self.verdict or None,
            "note": self.note or None,
        }


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.1f} s"


def _figure(stats: Stats, unit: str = "s") -> str:
    if unit == "bytes":
        return f"{stats.median / 1e6:.1f} MB"
    text = _seconds(stats.median)
    if len(stats.walls) > 1:
        text += f" [{min(stats.walls):.2f}-{max(stats.walls):.2f}]"
    return f"{text:<22} {stats.rss_kib / 1024:6.0f} MiB"


def format_rows(rows: Sequence[Row]) -> str:
    """Return the table: per row venvship's median wall [min-max] and peak RSS, the baseline's,
    the ratio, the target and PASS/MISS."""
    lines = []
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(
                f"\n== {section}  (median wall [min-max] over the runs, peak RSS of the largest process)"
            )
        lines.append(f"{row.case}")
        lines.append(f"    {row.ours_label:<70} {_figure(row.ours, row.unit)}")
        if row.base is not None:
            lines.append(f"    {row.base_label:<70} {_figure(row.base, row.unit)}")
        tail = []
        if row.ratio is not None:
            tail.append(f"ratio {row.ratio:.2f}x")
            if row.target is not None and row.target.max_factor is not None:
                what = "size" if row.unit == "bytes" else "time"
                tail.append(f"({what} {1 / row.ratio:.2f}x the baseline's)")
        if row.target is not None:
            tail.append(f"({row.target.text()})  {row.verdict}")
        if tail:
            lines.append("    " + "  ".join(tail))
        if row.note:
            lines.append(f"    note: {row.note}")
    return "\n".join(lines)


def format_targets(rows: Sequence[Row]) -> str:
    """Return one line per row with a target: PASS/MISS, the target, the section and case."""
    lines = [
        f"  {row.verdict:<4}  {row.target.text():<42} {row.section}: {row.case}"
        + (f" ({row.ours_label} vs {row.base_label})" if row.base is not None else f" ({row.ours_label})")
        for row in rows
        if row.target is not None
    ]
    if not lines:
        return ""
    missed = sum(1 for row in rows if row.verdict == "MISS")
    return f"\n== targets: {len(lines) - missed} PASS, {missed} MISS\n" + "\n".join(lines)
