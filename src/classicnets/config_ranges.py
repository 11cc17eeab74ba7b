"""The allowed range of every numeric config field, in one table (field, range, why), checked
by config_from_dict before anything is built; and the one string that names a path."""

from __future__ import annotations

import math
import os
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from classicnets.errors import UserError


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: low..high, each end open (excluded) or closed."""

    low: float
    high: float
    why: str
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below  # nan compares False anyway

    def text(self) -> str:
        high = "inf" if self.high == math.inf else f"{self.high:g}"
        return (
            f"{'(' if self.low_open else '['}{self.low:g}, {high}{')' if self.high_open else ']'}"
        )


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


INF = math.inf
SEED = Range(0, 2**63 - 1, "torch.manual_seed takes a 64-bit seed")
COUNT = Range(0, INF, "a count; 0 means all or off", high_open=True)
AT_LEAST_ONE = Range(1, INF, "a count of at least one", high_open=True)
FRACTION = Range(0, 1, "a share", high_open=True)


def _knob_ranges() -> dict[str, Range]:
    """The model knobs' ranges, declared with each knob in ModelConfig (high exclusive)."""
    from classicnets.config import model_knobs

    return {
        f"model.{name}": Range(
            -INF if spec.low is None else spec.low,
            INF if spec.high is None else spec.high,
            spec.doc,
            high_open=True,
        )
        for name, spec in model_knobs().items()
        if spec.low is not None or spec.high is not None
    }


# Every numeric config field and the values it may take, checked by config_from_dict before
# anything is built (tests/test_hostile.py checks that no numeric field is missing here).
RANGES: dict[str, Range] = {
    **_knob_ranges(),
    "data.flip_probability": Range(0, 1, "the probability of mirroring a training image"),
    "data.mean": Range(0, 1, "a channel mean on the [0, 1] pixel scale"),
    "data.std": Range(
        0, INF, "a channel std: positive, since images are divided by it", True, True
    ),
    "data.image_size": Range(0, 4096, "0 = the data set's native size; else pixels per side"),
    "data.val_fraction": Range(
        0, 1, "the share of train held out; 1 would leave none", high_open=True
    ),
    "data.limit": COUNT,
    "data.limit_per_class": COUNT,
    "data.num_workers": Range(0, 512, "loader processes; 0 loads in the main process"),
    "data.num_classes": AT_LEAST_ONE,
    "data.synthetic_size": Range(1, 4096, "pixels per side"),
    "data.synthetic_count": AT_LEAST_ONE,
    "data.split_seed": SEED,
    "data.scale_min": Range(1, 8192, "pixels on the shorter side (VGG §3.1)"),
    "data.scale_max": Range(1, 8192, "pixels on the shorter side (VGG §3.1)"),
    "data.eval_scale": Range(0, 8192, "0 = the middle of the training scales (VGG §3.2)"),
    "optim.lr": Range(0, INF, "a step size: positive and finite", low_open=True, high_open=True),
    "optim.momentum": Range(
        0, 1, "a decay of past gradients; 1 or more never forgets them", high_open=True
    ),
    "optim.weight_decay": Range(
        0, INF, "an L2 penalty; negative would reward large weights", high_open=True
    ),
    "optim.body_lr_scale": Range(
        0, 1e3, "a multiplier of optim.lr for the body (0 = the body does not learn)"
    ),
    "optim.lookahead_every": COUNT,
    "optim.lookahead_decay": Range(0, 1, "the share of the slow weights kept per step"),
    "schedule.step_epochs": AT_LEAST_ONE,
    "schedule.milestones": AT_LEAST_ONE,
    "schedule.gamma": Range(0, 1, "the factor the lr is multiplied by", low_open=True),
    "schedule.patience": COUNT,
    "schedule.warmup_epochs": Range(0, INF, "epochs of linear warm-up", high_open=True),
    "schedule.warmup_start": Range(0, 1, "the warm-up's first lr as a share of the peak"),
    "schedule.pct_start": Range(
        0, 1, "the share of steps spent rising (one-cycle)", low_open=True, high_open=True
    ),
    "schedule.min_lr": Range(0, INF, "the lr floor of cosine and linear decay", high_open=True),
    "train.epochs": AT_LEAST_ONE,
    "train.batch_size": AT_LEAST_ONE,
    "train.seed": SEED,
    "train.grad_clip": Range(0, INF, "a gradient norm; 0 = off", high_open=True),
    "train.label_smoothing": Range(0, 1, "the probability mass spread over all classes"),
    "train.early_stop_patience": COUNT,
    "train.stop_at_train_top1": Range(0, 100, "a training top-1 in percent; 0 = off"),
    "train.checkpoint_every_steps": COUNT,
    "train.log_every_steps": AT_LEAST_ONE,
}


def numeric_fields(cls: type, prefix: str = "") -> list[str]:
    """The dotted names of every int and float field (also optional ones and lists of them)."""
    names = []
    for item in fields(cls):
        hint = typing.get_type_hints(cls)[item.name]
        if is_dataclass(hint):
            names += numeric_fields(typing.cast(type, hint), f"{prefix}{item.name}.")
        elif {int, float} & {hint, *typing.get_args(hint)}:
            names.append(f"{prefix}{item.name}")
    return names


def check_config(config: Any) -> None:
    """Raise UserError naming the first field of a RunConfig outside its range, or a
    train.run_name that would leave --out."""
    run_name = config.train.run_name
    if ".." in run_name or any(sep in run_name for sep in ("/", "\\", os.sep, "\0")):
        raise UserError(
            f"train.run_name must be a plain folder name (no '..', '/' or '\\'); got {run_name!r}"
        )
    for key, allowed in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not allowed.holds(item):
                raise UserError(f"{key} must be in {allowed.text()} ({allowed.why}); got {item!r}")
    if config.data.scale_min > config.data.scale_max:
        raise UserError(
            f"data.scale_min ({config.data.scale_min}) must not exceed data.scale_max "
            f"({config.data.scale_max})"
        )
