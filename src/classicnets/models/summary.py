"""Per-layer model summary: output shapes, parameter counts and multiply-accumulates.

Operation counts come from torch.utils.flop_counter.FlopCounterMode, which counts the matrix
multiplies and convolutions of one forward pass (one image, eval mode) and reports FLOPs as
2 x multiply-accumulates. Published "GFLOPS" figures for these nets (torchvision's 0.71 for
AlexNet, 15.47 for VGG-16) are really GMACs, so the table's headline unit is the MAC.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class LayerRow:
    name: str  # the module's dotted path, e.g. features.0
    kind: str  # the module's class name, e.g. Conv2d
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    macs: int


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    total_macs: int
    input_shape: tuple[int, int, int]


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in model.named_modules() if not any(module.children())]


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> ModelSummary:
    """Run one image of `input_shape` (C, H, W) through `model` and tabulate it.

    Rows are the leaf modules that ran, in call order; a module called twice reports its
    last output shape. The model's training mode is restored afterwards.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []

    def record(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])
            if name not in order:
                order.append(name)

        return hook

    leaves = dict(_leaf_modules(model))
    handles = [module.register_forward_hook(record(name)) for name, module in leaves.items()]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()

    # FlopCounterMode names modules "<RootClass>.<dotted path>".
    flop_counts = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name in order:
        flops = sum(flop_counts.get(f"{root}.{name}", {}).values())
        rows.append(
            LayerRow(
                name=name,
                kind=type(leaves[name]).__name__,
                output_shape=shapes.get(name, ()),
                params=sum(p.numel() for p in leaves[name].parameters()),
                macs=flops // 2,
            )
        )
    return ModelSummary(
        rows=rows,
        total_params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_macs=counter.get_total_flops() // 2,
        input_shape=input_shape,
    )


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass of one image of `input_shape` (eval mode)."""
    return summarize(model, input_shape).total_macs


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(side) for side in shape) if shape else "-"


def format_summary(summary: ModelSummary) -> str:
    """The per-layer table and the totals, as plain text."""
    headers = ("layer", "kind", "output shape", "params", "MACs")
    body = [
        (row.name, row.kind, _shape_text(row.output_shape), f"{row.params:,}", f"{row.macs:,}")
        for row in summary.rows
    ]
    widths = [max(len(cells[i]) for cells in [headers, *body]) for i in range(len(headers))]
    numeric = (False, False, False, True, True)

    def line(cells: tuple[str, ...]) -> str:
        padded = (
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(cells, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    macs = summary.total_macs
    lines = [line(headers), rule, *(line(cells) for cells in body), rule]
    lines += [
        f"input: {_shape_text(summary.input_shape)} (one image)",
        f"params: {summary.total_params:,} ({summary.trainable_params:,} trainable)",
        f"MACs (multiply-accumulates): {macs:,} = {macs / 1e9:.3f} GMACs",
        f"FLOPs = 2 x MACs: {2 * macs:,} = {2 * macs / 1e9:.3f} GFLOPs",
    ]
    return "\n".join(lines)
