"""The model registry and the one entry point, `build_model`, that the rest of classicnets uses.

Family modules register their builders on `MODELS` with the metadata `ModelInfo` reads:
input_size (C, H, W), min_input_size, paper (one-line source) and family.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from classicnets.errors import UserError
from classicnets.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

# The architecture knobs shared with config.ModelConfig, and the values each accepts.
OPTION_CHOICES: dict[str, tuple[object, ...]] = {
    "norm": ("lrn", "bn", "none"),
    "activation": ("relu", "tanh"),
    "init": ("paper", "kaiming", "xavier", "torchvision"),
    "overlap_pool": (True, False),
}


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


def list_models() -> list[str]:
    return MODELS.names()


def _builder_options(builder: Callable[..., nn.Module]) -> tuple[str, ...]:
    parameters = inspect.signature(builder).parameters
    return tuple(name for name in parameters if name != "num_classes")


def model_info(name: str) -> ModelInfo:
    """The registry metadata of `name`; unknown names raise UnknownNameError."""
    builder = MODELS.get(name)
    meta = MODELS.meta(name)
    channels, height, width = meta["input_size"]
    return ModelInfo(
        name=name,
        input_size=(int(channels), int(height), int(width)),
        min_input_size=int(meta["min_input_size"]),
        paper=str(meta["paper"]),
        family=str(meta["family"]),
        options=_builder_options(builder),
        num_classes=10 if name.endswith("_cifar") else 1000,
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
    if option == "dropout":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise UserError(f"model {name}: dropout must be a number in [0, 1); got {value!r}")
        return
    choices = OPTION_CHOICES.get(option)
    if choices is not None and (value not in choices or type(value) is not type(choices[0])):
        accepted = ", ".join(str(choice).lower() for choice in choices)
        raise UserError(f"model {name}: {option} must be one of {accepted}; got {value!r}")


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
    accepted = _builder_options(builder)
    given = {option: value for option, value in options.items() if not _is_unset(value)}
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        takes = f"accepted options: {', '.join(accepted)}" if accepted else "it takes no options"
        raise UserError(f"model {name} does not accept {', '.join(unknown)}; {takes}")
    for option, value in given.items():
        _check_option_value(name, option, value)
    return builder(num_classes=num_classes, **given)
