"""What a run was trained with, resolved: the hyperparameter table at the top of a run report,
and the config fields that differ between runs, which opens a comparison.

config.yaml stores what the user set, where `None` or 0 mean "the default" (`model.norm: null`,
`data.image_size: 0`, `data.augment: default`). The table shows the value the run really
used, read from the model registry, the data set registry and summary.json, and marks it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from classicnets.config import RunConfig, config_to_dict
from classicnets.data import DATASETS
from classicnets.errors import UserError
from classicnets.models import model_info
from classicnets.report.document import Paragraph, Table
from classicnets.report.tables import MISSING
from classicnets.run_record import Environment, Summary

# The keys a reader needs first, in order; others appear when they differ from the default.
LEADING_KEYS = (
    "model.name",
    "model.weights",
    "data.name",
    "data.image_size",
    "data.augment",
    "optim.name",
    "optim.lr",
    "optim.momentum",
    "optim.weight_decay",
    "schedule.name",
    "train.epochs",
    "train.batch_size",
    "train.seed",
)
DERIVED = "(resolved)"


def flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}."""
    flat: dict[str, Any] = {}
    for section, values in config.items():
        if isinstance(values, Mapping):
            for key, value in values.items():
                flat[f"{section}.{key}"] = value
        else:
            flat[str(section)] = values
    return flat


def _defaults() -> dict[str, Any]:
    """The dataclass defaults of every config field."""
    return flatten(config_to_dict(RunConfig()))


def _registry_defaults(flat: Mapping[str, Any]) -> dict[str, Any]:
    """What the model builder and the data set choose for the fields left unset."""
    resolved: dict[str, Any] = {}
    # A model or data set this version does not register only costs the resolution.
    with contextlib.suppress(UserError):
        info = model_info(str(flat.get("model.name")))
        resolved.update({f"model.{knob}": value for knob, value in info.defaults})
    with contextlib.suppress(UserError):
        resolved["data.augment"] = DATASETS.meta(str(flat.get("data.name"))).get("augment")
    return resolved


def resolved_values(config: Mapping[str, Any], summary: Summary) -> dict[str, tuple[Any, bool]]:
    """Every config field -> (the value the run used, whether it was resolved from a default).
    Fields that config.yaml lacks (an older version wrote it) take today's defaults."""
    flat = {**_defaults(), **flatten(config)}
    registry = _registry_defaults(flat)
    values: dict[str, tuple[Any, bool]] = {}
    for key, value in flat.items():
        if (value is None and key in registry) or (
            key == "data.augment" and value == "default" and registry.get(key)
        ):
            values[key] = (registry[key], True)
        elif key == "data.image_size" and value == 0 and summary.input_size:
            values[key] = (summary.input_size[-1], True)
        else:
            values[key] = (value, False)
    return values


def format_value(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value) or "[]"
    return str(value) if value != "" else '""'


def hyperparameter_table(
    config: Mapping[str, Any], summary: Summary, env: Environment | None
) -> Table:
    """The leading keys, then every field the run set away from its default."""
    values = resolved_values(config, summary)
    defaults = _defaults()
    keys = [key for key in LEADING_KEYS if key in values]
    keys += [
        key
        for key in values
        if key not in keys and (values[key][1] or values[key][0] != defaults.get(key, object()))
    ]
    rows = []
    for key in keys:
        value, is_resolved = values[key]
        rows.append([key, format_value(value) + (f" {DERIVED}" if is_resolved else "")])
    if env is not None and env.precision:
        rows.append(["precision", env.precision])
    if env is not None and env.device != "?":
        rows.append(["device", env.device])
    return Table(["hyperparameter", "value"], rows, table_id="hyperparameters")


def config_differences(
    labels: Sequence[str], configs: Sequence[Mapping[str, Any]]
) -> Table | Paragraph:
    """One row per config field whose value is not the same in every run (one column each)."""
    flats = [flatten(config) for config in configs]
    keys: list[str] = []
    for flat in flats:
        keys += [key for key in flat if key not in keys]
    rows = []
    for key in keys:
        cells = [format_value(flat[key]) if key in flat else MISSING for flat in flats]
        if len(set(cells)) > 1:
            rows.append([key, *cells])
    if not rows:
        return Paragraph("The runs share every config field.")
    return Table(["config field", *labels], rows, table_id="config-differences")
