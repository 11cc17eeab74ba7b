"""The runs a comparison groups together (one group per compared cell, one run per seed), and
how two runs' class sets differ."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from classicnets.run_record import RunFolder

MONITOR_KEY = "monitor_test_top1"  # train.monitor_test: test-set monitoring, per epoch


@dataclass(frozen=True)
class RunGroup:
    """The runs of one compared cell: one run per seed."""

    label: str
    runs: list[RunFolder]

    def values(self, read: Callable[[RunFolder], float | None]) -> list[float | None]:
        """One value per run (None where the run lacks it)."""
        return [read(run) for run in self.runs]


def class_difference(first: RunFolder, second: RunFolder) -> str:
    """'' when both runs have the same class set, else which classes differ."""
    only_first = sorted(set(first.classes) - set(second.classes))
    only_second = sorted(set(second.classes) - set(first.classes))
    parts = []
    if only_first:
        parts.append(f"only in {first.run_id}: {_shorten(only_first)}")
    if only_second:
        parts.append(f"only in {second.run_id}: {_shorten(only_second)}")
    return "; ".join(parts)


def _shorten(names: list[str], limit: int = 8) -> str:
    extra = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {extra} more" if extra > 0 else "")
