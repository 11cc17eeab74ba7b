"""The model registry and the one entry point, `build_model`, that the rest of classicnets uses.

Family modules register their builders on `MODELS` with the metadata `ModelInfo` reads:
input_size (C, H, W), min_input_size, paper (one-line source), family, and optionally
num_classes (the class count it is listed at) and defaults (the knobs it takes, with the
values it builds when they are unset). Knob names, values and ranges come from
config.model_knobs, the one place they are declared.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from classicnets.config import model_knobs
from classicnets.config_ranges import RANGES
from classicnets.errors import UserError
from classicnets.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


@dataclass(frozen=True)
class ModelInfo:
    """What the CLI and reports show about a registered model.

    min_input_size is the smallest square image side the model accepts: below it some layer
    would produce an empty feature map (or, for ResNet-18 and GoogLeNet, whose adaptive pooling
    accepts anything, the last stage would see less than one pixel of the image).
    num_classes is the class count used when listing parameter counts (1000, or 10 for _cifar).
    """

    name: str
    input_size: tuple[int, int, int]
    min_input_size: int
    paper: str
    family: str
    options: tuple[str, ...]
    num_classes: int = 1000
    defaults: tuple[tuple[str, Any], ...] = ()  # (knob, value) the builder uses when unset


@dataclass(frozen=True)
class Variant:
    """One registered variant of a family: a row of the family's variant table."""

    name: str
    table_key: str  # the family's own layout label (VGG Table 1 column, AlexNet layout)
    defaults: dict[str, Any]  # every knob the family takes, with this variant's values
    input_side: int
    min_input_size: int
    paper: str
    summary: str  # the builder docstring's first line
    deviations: str  # "none", or the list of changes from the paper
    num_classes: int = 1000


def register_variants(
    family: str, variants: list[Variant], build: Callable[[Variant, int, dict[str, Any]], nn.Module]
) -> None:
    """Register one builder per variant; each calls `build(variant, num_classes, knobs)` with
    the variant's defaults overridden by the knobs given."""
    for variant in variants:

        def builder(
            num_classes: int = variant.num_classes, variant: Variant = variant, **knobs: Any
        ) -> nn.Module:
            return build(variant, num_classes, {**variant.defaults, **knobs})

        builder.__name__ = builder.__qualname__ = variant.name
        builder.__doc__ = f"{variant.summary}\n\nDeviations: {variant.deviations}"
        MODELS.register(
            variant.name,
            input_size=(3, variant.input_side, variant.input_side),
            min_input_size=variant.min_input_size,
            paper=variant.paper,
            family=family,
            num_classes=variant.num_classes,
            defaults=dict(variant.defaults),
        )(builder)


def list_models() -> list[str]:
    return MODELS.names()


def _builder_options(name: str) -> tuple[str, ...]:
    defaults = MODELS.meta(name).get("defaults")
    if defaults is not None:
        return tuple(defaults)
    parameters = inspect.signature(MODELS.get(name)).parameters
    return tuple(option for option in parameters if option != "num_classes")


def model_info(name: str) -> ModelInfo:
    """The registry metadata of `name`; unknown names raise UnknownNameError."""
    meta = MODELS.meta(name)
    channels, height, width = meta["input_size"]
    return ModelInfo(
        name=name,
        input_size=(int(channels), int(height), int(width)),
        min_input_size=int(meta["min_input_size"]),
        paper=str(meta["paper"]),
        family=str(meta["family"]),
        options=_builder_options(name),
        num_classes=int(meta.get("num_classes", 10 if name.endswith("_cifar") else 1000)),
        defaults=tuple((meta.get("defaults") or {}).items()),
    )


def check_input_size(name: str, image_size: int) -> None:
    """Raise UserError if `image_size` is below the smallest side model `name` accepts."""
    info = model_info(name)
    if image_size < info.min_input_size:
        native = "x".join(str(side) for side in info.input_size)
        raise UserError(
            f"model {name} needs images of at least {info.min_input_size}x{info.min_input_size} "
            f"pixels (native {native}); got a side of {image_size}"
        )


def _check_option_value(name: str, option: str, value: Any) -> None:
    spec = model_knobs().get(option)
    if spec is None:
        return
    if spec.choices is not None:
        if value not in spec.choices or type(value) is not spec.kind:
            accepted = ", ".join(str(choice).lower() for choice in spec.choices)
            raise UserError(f"model {name}: {option} must be one of {accepted}; got {value!r}")
        return
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if spec.kind is int and not isinstance(value, int):
        is_number = False
    allowed = RANGES.get(f"model.{option}")
    if not is_number or (allowed is not None and not allowed.holds(value)):
        kind = "a whole number" if spec.kind is int else "a number"
        within = f" in {allowed.text()} ({allowed.why})" if allowed is not None else ""
        raise UserError(f"model {name}: {option} must be {kind}{within}; got {value!r}")


def _is_unset(value: Any) -> bool:
    # ModelConfig leaves knobs as None and column_devices as [] when the user set nothing.
    return value is None or (isinstance(value, list | tuple) and not value)


def build_model(name: str, num_classes: int = 1000, **options: Any) -> nn.Module:
    """Build model `name` on the CPU with `num_classes` outputs and the given architecture knobs.

    Options left as None (or an empty list) keep the builder's own (paper) default. An option
    the model does not take, a bad option value or num_classes < 1 raises UserError.
    """
    builder = MODELS.get(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"num_classes must be a whole number >= 1; got {num_classes!r}")
    accepted = _builder_options(name)
    given = {option: value for option, value in options.items() if not _is_unset(value)}
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        takes = f"accepted options: {', '.join(accepted)}" if accepted else "it takes no options"
        raise UserError(f"model {name} does not accept {', '.join(unknown)}; {takes}")
    for option, value in given.items():
        _check_option_value(name, option, value)
    return builder(num_classes=num_classes, **given)
