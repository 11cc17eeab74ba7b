"""Subcommands: `models` (list the model zoo) and `summary` (per-layer table of one model, by
name or as a preset builds it)."""

import argparse
import re
from typing import Any

from classicnets.config import knob_values, load_config
from classicnets.errors import UserError


def add_parsers(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add this module's subcommands."""
    listing = subparsers.add_parser(
        "models",
        help="list every model with its input size, parameter count and source",
        description="List every registered model: native input size, parameter count "
        "(at 1000 classes, or 10 for the _cifar models) and the paper it follows.",
    )
    listing.set_defaults(handler=run_models)

    summary = subparsers.add_parser(
        "summary",
        help="per-layer output shapes, parameters and multiply-accumulates of one model",
        description="Print a per-layer table (output shape, parameters, MACs) and totals. "
        "MACs are multiply-accumulates, counted by torch.utils.flop_counter; FLOPs = 2 x MACs.",
    )
    summary.add_argument("name", nargs="?", help="a model name, see `classicnets models`")
    summary.add_argument(
        "--preset",
        help="summarise the model a preset (configs/ name or YAML path) builds, with its knobs "
        "and image size",
    )
    summary.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override the preset"
    )
    summary.add_argument(
        "--input",
        metavar="CxHxW",
        help="input shape of one image, e.g. 3x227x227 (default: the model's native size)",
    )
    summary.add_argument(
        "--num-classes",
        type=int,
        help="number of output classes (default: 1000, or 10 for _cifar models)",
    )
    summary.set_defaults(handler=run_summary)


def _param_count(name: str, num_classes: int) -> int:
    import torch

    from classicnets.models import build_model

    # The meta device allocates no memory and runs no real init, so VGG-19 costs nothing here.
    with torch.device("meta"):
        model = build_model(name, num_classes=num_classes)
    return sum(parameter.numel() for parameter in model.parameters())


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(side) for side in shape)


def run_models(args: argparse.Namespace) -> int:
    from classicnets.models import list_models, model_info

    header = ("model", "input", "params", "classes", "source")
    rows = [header]
    for name in list_models():
        info = model_info(name)
        params = _param_count(name, info.num_classes)
        rows.append(
            (name, _shape_text(info.input_size), f"{params:,}", str(info.num_classes), info.paper)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
        print("  ".join(cells))
    print("params are counted with `classes` outputs, each model's usual class count")
    return 0


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """'3x227x227' -> (3, 227, 227); anything else raises UserError."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise UserError(f"--input must be CxHxW with whole numbers, e.g. 3x227x227; got {text!r}")
    channels, height, width = (int(group) for group in match.groups())
    if channels != 3:
        raise UserError(f"--input must have 3 channels (RGB), e.g. 3x227x227; got {text!r}")
    return channels, height, width


def run_summary(args: argparse.Namespace) -> int:
    import torch

    from classicnets.models import build_model, check_input_size, model_info
    from classicnets.models.summary import format_summary, summarize

    if (args.name is None) == (args.preset is None):
        raise UserError("summary takes a model name or --preset NAME (one of them)")
    if args.set and args.preset is None:
        raise UserError("summary: --set needs --preset")
    knobs: dict[str, Any] = {}
    image_size = 0
    if args.preset is not None:
        config = load_config(args.preset, args.set)
        name, knobs, image_size = (
            config.model.name,
            knob_values(config.model),
            config.data.image_size,
        )
    else:
        name = args.name
    info = model_info(name)
    input_shape = info.input_size
    if args.input is not None:
        input_shape = parse_input_shape(args.input)
    elif image_size:
        input_shape = (3, image_size, image_size)
    check_input_size(info.name, min(input_shape[1:]))
    num_classes = info.num_classes if args.num_classes is None else args.num_classes
    with torch.device("meta"):  # shapes, counts and MACs need no memory and no real init
        model = build_model(info.name, num_classes=num_classes, **knobs)
    if args.preset is not None:
        print(f"preset {args.preset}: model {info.name} at {_shape_text(input_shape)}")
        resolved = {**dict(info.defaults), **knobs}
        given = ", ".join(f"{key}={value}" for key, value in knobs.items()) or "none"
        print(f"knobs the preset sets: {given}")
        print("knobs as built: " + ", ".join(f"{k}={v}" for k, v in resolved.items()))
    print(f"{info.name}: {info.paper}; {num_classes} classes")
    print(format_summary(summarize(model, input_shape)))
    return 0
