"""Weight gradient of each convolution of a model: oneDNN's kernel next to kernels/conv.py's GEMM.

For every conv layer of the model at the given batch size (channels_last, fp32, CPU), times
the weight gradient alone, both ways, interleaved in rounds with the machine's matmul rate;
prints each as a fraction of the matmul rate, the median over rounds, and which one
`classicnets.kernels.Conv2d` uses on this machine (its trial of the layer's forward and
backward, kernels/choice.py, cached in the user's cache folder).

    .venv/bin/python benchmarks/conv_weight_grad.py --model vgg16_bn_cifar --batch-size 128
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput

from classicnets import allocator
from classicnets.kernels import use_kernels
from classicnets.kernels.conv import weight_grad
from classicnets.models import build_model


def conv_inputs(model: nn.Module, batch_size: int, side: int) -> list[tuple[nn.Conv2d, torch.Size]]:
    """Each conv layer with the shape of its input, from one forward pass."""
    seen: list[tuple[nn.Conv2d, torch.Size]] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, args: seen.append((m, args[0].shape)))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(batch_size, 3, side, side))
    for hook in hooks:
        hook.remove()
    return seen


@dataclass
class LayerCase:
    name: str
    weights: int  # the GEMM's output size
    uses_gemm: bool  # what Conv2d itself chose for this layer on this machine
    gflop: float
    onednn: Callable[[], object]
    gemm: Callable[[], object]


def gemm_possible(conv: nn.Conv2d) -> bool:
    return conv.groups == 1 and isinstance(conv.padding, tuple)


def layer_case(conv: nn.Conv2d, shape: torch.Size) -> LayerCase:
    """The layer's weight gradient both ways, on random channels_last tensors of its shapes."""
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    weight = conv.weight.detach().contiguous(memory_format=torch.channels_last)
    out = conv(x)  # with autograd on, so its grad_fn shows which weight gradient Conv2d takes
    grad_out = torch.randn_like(out.detach())
    kernel, stride, padding, dilation = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    assert isinstance(padding, tuple)

    def onednn() -> object:
        return torch.ops.aten.convolution_backward(
            grad_out,
            x,
            weight,
            None,
            stride,
            padding,
            dilation,
            False,
            [0, 0],
            1,
            [False, True, False],
        )

    def gemm() -> object:
        return weight_grad(x, grad_out, kernel, stride, padding, dilation)

    columns = conv.in_channels * kernel[0] * kernel[1]
    return LayerCase(
        name=f"{conv.in_channels}->{conv.out_channels} @ {shape[-1]}",
        weights=conv.weight.numel(),
        uses_gemm=type(out.grad_fn).__name__ == "_Conv2dFnBackward",
        gflop=2.0 * grad_out.numel() * columns / 1e9,
        onednn=onednn,
        gemm=gemm,
    )


def seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # buffers and kernel selection
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def main() -> int:
    allocator.configure()  # before the first tensor (classicnets/allocator.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--side", type=int, default=32, help="input image side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    machine = throughput.machine_description(cpu)
    print(
        f"date {machine['date']}; command: .venv/bin/python benchmarks/conv_weight_grad.py "
        f"{' '.join(sys.argv[1:])}"
    )
    print(
        f"machine: {machine['cpu']} ({machine['cores']} cores), torch {machine['torch']}, "
        f"{machine['torch_threads']} torch threads"
    )
    model = build_model(args.model, num_classes=10)
    use_kernels(model, "auto", cpu)
    layers = conv_inputs(model, args.batch_size, args.side)
    cases = [layer_case(conv, shape) for conv, shape in layers if gemm_possible(conv)]
    # Per round and layer: (oneDNN, GEMM) GFLOP/s over the matmul rate measured just before.
    ratios: list[list[tuple[float, float]]] = [[] for _ in cases]
    for round_index in range(args.rounds):
        for case, measured in zip(cases, ratios, strict=True):
            rate = throughput.matmul_gflops(cpu, min_seconds=0.3)
            onednn, gemm = seconds(case.onednn, args.repeats), seconds(case.gemm, args.repeats)
            measured.append((case.gflop / onednn / rate, case.gflop / gemm / rate))
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    print(f"weight gradient GFLOP/s over the fp32 matmul rate, medians of {args.rounds} rounds:")
    print(f"  {'layer (in->out @ input side)':30} {'weights':>8} {'oneDNN':>8} {'GEMM':>8}  used")
    for case, measured in zip(cases, ratios, strict=True):
        onednn_ratio = statistics.median(r[0] for r in measured)
        gemm_ratio = statistics.median(r[1] for r in measured)
        used = "GEMM" if case.uses_gemm else "oneDNN"
        print(f"  {case.name:30} {case.weights:8d} {onednn_ratio:8.2f} {gemm_ratio:8.2f}  {used}")
    print(f"load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
