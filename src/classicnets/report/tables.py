"""Number formatting for report tables, and mean ± std over seeds.

Every cell is a string; a missing value is an em dash, never 0 or NaN, so that a table never
shows a number that was not measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import Field
from typing import Any

import numpy as np

MISSING = "—"


def format_number(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.{digits}f}"


def format_count(value: float | None) -> str:
    """An integer with thousands separators: 61,100,840."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{round(value):,}"


def format_macs(value: float | None) -> str:
    """Multiply-accumulates per image in G/M/K units: 0.71 G."""
    if value is None or not math.isfinite(value):
        return MISSING
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def format_shown(spec: Field[Any], value: float | None) -> str:
    """A value of a record field declared with run_record.shown, in the field's style."""
    style, digits = spec.metadata["style"], spec.metadata["digits"]
    if style == "count":
        return format_count(value)
    if style == "macs":
        return format_macs(value)
    if style == "lr":
        return MISSING if value is None or not math.isfinite(value) else f"{value:.3g}"
    return format_number(value, digits)


def format_seconds(value: float | None) -> str:
    """Wall time: 42.1 s, 12m 05s, 3h 02m."""
    if value is None or not math.isfinite(value):
        return MISSING
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_delta(value: float | None, digits: int = 2) -> str:
    """A signed difference in percentage points: +1.25 or -0.50."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:+.{digits}f}"


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample std (None for one value) and count of the values that are present."""
    present = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not present:
        return None, None, 0
    std = float(np.std(present, ddof=1)) if len(present) > 1 else None
    return float(np.mean(present)), std, len(present)


def format_mean_std(
    values: Sequence[float | None], total: int, digits: int = 2, *, count: bool = False
) -> str:
    """'91.20 ± 0.35' over seeds; '(n=2)' is appended when fewer than `total` runs have the
    value, so a mean over a subset is never mistaken for a mean over all seeds."""
    mean, std, present = mean_std(values)
    if mean is None:
        return MISSING
    text = format_count(mean) if count and std is None else format_number(mean, digits)
    if std is not None:
        text += f" ± {format_number(std, digits)}"
    if present < total:
        text += f" (n={present})"
    return text
