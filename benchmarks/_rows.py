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
    fs: str = ""  # the file system the case ran on: "tmpfs", "disk", or "" (not measured per file system)
    where: str = ""  # where venvship's time went (shown beside a MISS)

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
            "fs": self.fs or None,
            "where": self.where or None,
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
        lines.append(f"{row.case}" + (f"  [{row.fs}]" if row.fs else ""))
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
        distrust = [
            f"{who}: {why}"
            for who, why in (("ours", row.ours.trust), ("baseline", row.base.trust if row.base else ""))
            if why
        ]
        if distrust and row.unit == "s":
            lines.append(f"    not trusted ({'; '.join(distrust)})")
        if row.where:
            lines.append(f"    where the time goes: {row.where}")
    return "\n".join(lines)


def _cell(row: Row | None) -> str:
    """One file system's figures of a target: ours, the baseline, ours/baseline, the verdict."""
    if row is None:
        return f"{'-':<38}"
    if row.unit == "bytes":
        ours, base = f"{row.ours.median / 1e6:.1f}MB", f"{row.base.median / 1e6:.1f}MB" if row.base else "-"
    elif row.target is not None and row.target.max_mib is not None:
        ours, base = f"{row.ours.rss_kib / 1024:.0f}MiB", "-"
    else:
        ours, base = f"{row.ours.median:.2f}s", f"{row.base.median:.2f}s" if row.base else "-"
    times = f"{1 / row.ratio:.2f}x" if row.ratio else "-"
    trusted = row.ours.trust == "" and (row.base is None or row.base.trust == "")
    verdict = row.verdict + ("" if trusted or row.unit == "bytes" else "?")
    return f"{ours:>8} {base:>8} {times:>6} {verdict:<5}"


def format_targets(rows: Sequence[Row]) -> str:
    """Return one table row per target: the target, then per file system venvship's figure, the
    baseline's, venvship/baseline and PASS/MISS (judged on tmpfs where both ran; "?": a median
    not to be trusted, see the rows above), the case, and where the time goes of a MISS."""
    groups: dict[tuple[str, str, str], dict[str, Row]] = {}
    judging = "tmpfs" if any(row.fs == "tmpfs" for row in rows) else "disk"
    for row in rows:
        if row.target is not None:  # a figure no file system changes (a size) stands where judged
            groups.setdefault((row.section, row.case, row.ours_label), {})[row.fs or judging] = row
    if not groups:
        return ""
    judged = [fs.get("tmpfs") or fs["disk"] for fs in groups.values()]
    missed = sum(1 for row in judged if row.verdict == "MISS")
    head = f"{'ours':>8} {'baseline':>8} {'x base':>6} {'':<5}"
    lines = [
        f"\n== targets: {len(judged) - missed} PASS, {missed} MISS (judged on tmpfs; disk beside;"
        " ? = a median not trusted)",
        f"  {'target':<40} | tmpfs {head} | disk  {head} | case",
    ]
    for (section, case, label), fs in groups.items():
        first = fs.get("tmpfs") or fs["disk"]
        assert first.target is not None
        versus = f" ({label} vs {first.base_label})" if first.base is not None else f" ({label})"
        lines.append(
            f"  {first.target.text():<40} | tmpfs {_cell(fs.get('tmpfs'))} | disk  {_cell(fs.get('disk'))}"
            f" | {section}: {case}{versus}"
        )
        for name, row in fs.items():
            if row.verdict == "MISS" and row.where:
                lines.append(f"  {'':<40}   MISS on {name}, where the time goes: {row.where}")
    return "\n".join(lines)
