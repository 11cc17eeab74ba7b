"""What an experiment reads from its run folders, and how a paper's claim is judged from it.

A `Metric` turns one finished run into one `Reading`; readings of the seeds of a cell are
summarised as `CellStats` (mean ± sample std); `judge` compares two cells against a claim and
returns a `Judgement` whose verdict says whether the claim held (rule: VERDICT_RULE).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from classicnets.run_record import RunFolder

Verdict = Literal["held", "not held", "leans held", "leans not held", "not measured"]
VERDICTS: tuple[Verdict, ...] = ("held", "not held", "leans held", "leans not held", "not measured")
Expectation = Literal["first_better", "no_gain"]

VERDICT_RULE = (
    "The effect is the first cell's advantage over the second, in the metric's unit. The noise "
    "is two standard errors of the difference of the two means, 2 * sqrt(s1^2/n1 + s2^2/n2), "
    "known only with at least two seeds per cell. A claim 'first beats second' is held when "
    "the effect exceeds the noise and not held when it is below minus the noise; otherwise it "
    "leans held or leans not held by the sign of the effect (always so with one seed). A claim "
    "'first gives no gain over second' is held when the effect is at most the tolerance, not "
    "held when it exceeds tolerance + noise, and leans either way when the seeds cannot tell. "
    "For 'epochs to reach X' a run that never reached X counts as its number of epochs, a "
    "lower bound ('>' in the tables); such bounds in the claimed-better cell cap the verdict "
    "at 'leans'. Not measured: a cell has no finished run, or no run reached the threshold."
)

DECISIVE_RULE = (
    "The cpu budget's decisive rule, fixed before the runs, gives every claim 'held' or 'not "
    "held': each claim states the smallest effect that counts (half the paper's). A difference "
    "claim is held when the measured effect is at least that size and exceeds the noise (two "
    "standard errors of the difference of the means); otherwise not held. A ratio claim ('N "
    "times faster') is held when every seed of the faster cell reached the threshold and the "
    "fastest seed of the slower cell took at least N times the epochs of the slowest seed of "
    "the faster cell (a slower-cell seed that never reached it counts as its epochs, a lower "
    "bound); otherwise not held. Both need at least two seeds per cell; with fewer, or with a "
    "missing run, the claim is not measured."
)


@dataclass(frozen=True)
class Reading:
    """One run's value. `at_least`: a threshold was never reached, the true value is larger."""

    value: float
    at_least: bool = False


@dataclass(frozen=True)
class Metric:
    """A number read from one run folder; `unit` is shown after values ("%", "epochs")."""

    name: str
    unit: str
    lower_is_better: bool
    read: Callable[[RunFolder], Reading | None]


def _test_error(run: RunFolder) -> Reading | None:
    top1 = run.test_top1()
    return None if top1 is None else Reading(100.0 - top1)


def _test_top5_error(run: RunFolder) -> Reading | None:
    top5 = run.test_top5()
    return None if top5 is None else Reading(100.0 - top5)


def _generalization_gap(run: RunFolder) -> Reading | None:
    if not run.epochs:
        return None
    last = run.epochs[-1]
    if last.val_top1 is None or math.isnan(last.train_top1):
        return None
    return Reading(last.train_top1 - last.val_top1)


TEST_ERROR = Metric("test top-1 error", "%", lower_is_better=True, read=_test_error)
TEST_TOP5_ERROR = Metric("test top-5 error", "%", lower_is_better=True, read=_test_top5_error)
GENERALIZATION_GAP = Metric(
    "train - val top-1 at the last epoch", "points", lower_is_better=True, read=_generalization_gap
)


def epochs_to(key: Literal["train_top1", "val_top1"], percent: float) -> Metric:
    """Epochs until `key` (an EpochRecord field, percent) first reaches `percent`."""
    what = "training" if key == "train_top1" else "validation"
    name = f"epochs to {100 - percent:g}% {what} error"

    def read(run: RunFolder) -> Reading | None:
        epoch = run.first_epoch_reaching(key, percent)
        if epoch is not None:
            return Reading(float(epoch))
        if not run.is_complete:
            return None  # an unfinished run might still reach it
        return Reading(float(len(run.epochs)), at_least=True)

    return Metric(name, "epochs", lower_is_better=True, read=read)


@dataclass(frozen=True)
class CellStats:
    """The readings of one cell over its seeds."""

    label: str
    readings: tuple[Reading, ...]
    runs: int  # runs in the cell, finished or not

    @property
    def count(self) -> int:
        return len(self.readings)

    @property
    def censored(self) -> int:
        return sum(r.at_least for r in self.readings)

    @property
    def mean(self) -> float | None:
        return float(np.mean([r.value for r in self.readings])) if self.readings else None

    @property
    def std(self) -> float | None:
        """Sample std over seeds (None below two readings)."""
        if self.count < 2:
            return None
        return float(np.std([r.value for r in self.readings], ddof=1))

    def text(self, digits: int = 2) -> str:
        """'12.40 ± 0.35 (n=2)', '> 8' when no seed reached a threshold, '—' when unmeasured."""
        if self.mean is None:
            return "—"
        if self.censored == self.count:
            return f"> {max(r.value for r in self.readings):g}"
        text = f"{self.mean:.{digits}f}"
        if self.std is not None:
            text += f" ± {self.std:.{digits}f}"
        text += f" (n={self.count})"
        if self.censored:
            text = f"≥ {text}, {self.censored} not reached"
        return text


def cell_stats(metric: Metric, label: str, runs: Sequence[RunFolder]) -> CellStats:
    readings = [metric.read(run) for run in runs]
    return CellStats(label, tuple(r for r in readings if r is not None), len(runs))


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    effect: float | None  # the first cell's advantage, in the metric's unit
    noise: float | None  # two standard errors of the difference; None without spread
    reason: str


def judge(
    metric: Metric,
    first: CellStats,
    second: CellStats,
    expect: Expectation,
    tolerance: float = 0.0,
) -> Judgement:
    """Judge "first beats second" (first_better) or "first is no better" (no_gain)."""
    if first.mean is None or second.mean is None:
        missing = first.label if first.mean is None else second.label
        return Judgement("not measured", None, None, f"no finished run of {missing!r}")
    if first.censored == first.count and second.censored == second.count:
        return Judgement(
            "not measured", None, None, "neither cell reached the threshold within the budget"
        )
    sign = -1.0 if metric.lower_is_better else 1.0
    effect = sign * (first.mean - second.mean)
    noise = None
    if first.std is not None and second.std is not None:
        noise = 2.0 * math.sqrt(first.std**2 / first.count + second.std**2 / second.count)
    # A censored reading is a lower bound. With lower-is-better metrics, bounds in the second
    # cell only shrink the measured advantage of the first (conservative); bounds in the first
    # cell inflate it, so they cap the verdict at "leans".
    inflated = first.censored > 0 if metric.lower_is_better else second.censored > 0
    unit = "points" if metric.unit == "%" else metric.unit  # a difference of percentages
    if expect == "first_better":
        return _judge_better(effect, noise, inflated, first.label, second.label, unit)
    return _judge_no_gain(effect, noise, tolerance, first.label, second.label, unit)


def _judge_better(
    effect: float, noise: float | None, inflated: bool, first: str, second: str, unit: str
) -> Judgement:
    size = f"{abs(effect):.2f} {unit}"
    direction = f"{first} ahead by {size}" if effect > 0 else f"{second} ahead by {size}"
    if effect == 0:
        direction = f"{first} and {second} tie"
    if noise is None:
        why = "one seed per cell gives no spread"
        verdict: Verdict = "leans held" if effect > 0 else "leans not held"
        return Judgement(verdict, effect, None, f"{direction}; {why} (rerun with --seeds 3)")
    if effect > noise and not inflated:
        return Judgement("held", effect, noise, f"{direction}, beyond the noise (±{noise:.2f})")
    if effect < -noise:
        return Judgement("not held", effect, noise, f"{direction}, beyond the noise (±{noise:.2f})")
    why = "a threshold not reached by the first cell" if inflated else "within the noise"
    verdict = "leans held" if effect > 0 else "leans not held"
    return Judgement(verdict, effect, noise, f"{direction}, {why} (±{noise:.2f})")


def _judge_no_gain(
    effect: float, noise: float | None, tolerance: float, first: str, second: str, unit: str
) -> Judgement:
    gain = f"{first} vs {second}: {effect:+.2f} {unit} (tolerance {tolerance:g})"
    if noise is None:
        verdict: Verdict = "leans held" if effect <= tolerance else "leans not held"
        return Judgement(verdict, effect, None, f"{gain}; one seed per cell gives no spread")
    if effect <= tolerance:
        return Judgement("held", effect, noise, f"{gain}: no gain beyond the tolerance")
    if effect > tolerance + noise:
        return Judgement("not held", effect, noise, f"{gain}: a gain beyond the noise")
    return Judgement("leans not held", effect, noise, f"{gain}: within the noise (±{noise:.2f})")


def ratio_text(first: CellStats, second: CellStats) -> str:
    """How many times the second cell's value the first's is: '≥ 2.4x' if the second is a bound."""
    if first.mean is None or second.mean is None or first.mean <= 0:
        return "—"
    bound = "≥ " if second.censored and not first.censored else ""
    if first.censored and not second.censored:
        bound = "≤ "
    return f"{bound}{second.mean / first.mean:.1f}x"


def judge_decisive(
    metric: Metric, first: CellStats, second: CellStats, smallest: float, ratio: bool
) -> Judgement:
    """DECISIVE_RULE: "held" or "not held" for "first beats second" by at least `smallest`
    (metric units, or with `ratio` the factor second / first of lower-is-better readings)."""
    if first.count < 2 or second.count < 2:
        short = first.label if first.count < 2 else second.label
        return Judgement("not measured", None, None, f"{short!r} has fewer than two readings")
    if ratio:
        return _judge_ratio(first, second, smallest)
    judged = judge(metric, first, second, "first_better")
    effect, noise = judged.effect, judged.noise
    assert effect is not None and noise is not None
    unit = "points" if metric.unit == "%" else metric.unit
    size = f"{first.label} ahead by {effect:+.2f} {unit} (noise ±{noise:.2f}, needed {smallest:g})"
    if effect >= smallest and effect > noise:
        return Judgement("held", effect, noise, size)
    why = "below the needed size" if effect < smallest else "within the noise"
    return Judgement("not held", effect, noise, f"{size}: {why}")


def _judge_ratio(first: CellStats, second: CellStats, smallest: float) -> Judgement:
    if first.censored:
        return Judgement(
            "not held",
            None,
            None,
            f"{first.censored} seed(s) of {first.label!r} never reached the threshold",
        )
    slowest = max(r.value for r in first.readings)
    fastest = min(r.value for r in second.readings)
    bound = "≥ " if any(r.at_least and r.value == fastest for r in second.readings) else ""
    factor = fastest / slowest
    text = (
        f"fastest {second.label} seed {bound}{fastest:g} epochs / slowest {first.label} seed "
        f"{slowest:g} = {bound}{factor:.1f}x (needed {smallest:g}x)"
    )
    verdict: Verdict = "held" if factor >= smallest else "not held"
    return Judgement(verdict, factor, None, text)
