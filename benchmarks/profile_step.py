"""Where a training step's time goes: torch.profiler over compute-only steps, by kind of op.

The efficiency target of throughput.py compares counted GFLOP/s with the machine's peak. This
script shows the two reasons a net falls short of it: the share of the step spent outside the
FLOP-carrying kernels (BatchNorm, ReLU, pooling, LRN, dropout, casts, the optimizer: memory
bound), and the rate of the convolutions themselves, per layer shape (small maps run far below
the peak). The peak is benchmarks/peak.py's for the precision in use.

    .venv/bin/python benchmarks/profile_step.py --model vgg16_bn_cifar --batch-size 128
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Sequence

import peak
import throughput
import torch
from torch.profiler import ProfilerActivity, profile

from classicnets import allocator
from classicnets.train.setup import RunParts, build_run_parts

# Op-name fragments to a kind; the first match wins, so the specific ones come first.
KINDS = (
    ("convolution", ("conv", "mkldnn_convolution")),
    (
        "matmul (FC layers, GEMM convolutions)",
        ("addmm", "aten::mm", "matmul", "linear", "aten::bmm"),
    ),
    ("batch norm", ("batch_norm",)),
    ("local response norm", ("lrn", "avg_pool3d", "local_response")),
    ("pooling", ("pool",)),
    ("relu", ("relu", "threshold")),
    ("dropout", ("dropout", "bernoulli", "rand")),
    ("optimizer", ("_foreach", "sgd", "adam", "add_", "lerp")),
    ("casts and copies", ("copy", "_to_copy", "aten::to", "contiguous", "clone")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    for kind, fragments in KINDS:
        if any(fragment in lowered for fragment in fragments):
            return kind
    return "other"


def forward_by_layer_type(
    parts: RunParts, model: torch.nn.Module, x: torch.Tensor, steps: int
) -> dict[str, float]:
    """Milliseconds per forward pass spent in each type of leaf layer, timed by hooks; the
    rest of the forward (reshapes, the loss) is left out."""
    device = parts.precision.device
    spent: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}

    def before(layer: torch.nn.Module, _: object) -> None:
        throughput.synchronize(device)
        started[id(layer)] = time.perf_counter()

    def after(layer: torch.nn.Module, _: object, __: object) -> None:
        throughput.synchronize(device)
        spent[type(layer).__name__] += (time.perf_counter() - started[id(layer)]) * 1e3 / steps

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [
        h
        for m in leaves
        for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))
    ]
    precision = parts.precision
    try:
        with torch.autocast(
            device.type,
            dtype=precision.amp_dtype or torch.float32,
            enabled=precision.amp_dtype is not None,
        ):
            for _ in range(steps):
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    return dict(spent)


def main(argv: Sequence[str] | None = None) -> int:
    allocator.configure()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args(argv)

    images = args.batch_size * 2
    config = throughput.pipeline_config(
        args.model, args.batch_size, args.device, "synthetic", images, args.overrides
    )
    parts = build_run_parts(config, None)
    device, precision = parts.precision.device, parts.precision
    x, y = next(iter(parts.data.train_loader.epoch(0)))
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model = parts.model.wrapped
    flops = throughput.training_step_flops(parts.model.module, x, y)
    for _ in range(2):  # warm-up, and the kernel trials of train.kernels=auto
        throughput.compute_step(parts, model, x, y)
    throughput.synchronize(device)

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, record_shapes=True, with_flops=True) as prof:
        for _ in range(args.steps):
            throughput.compute_step(parts, model, x, y)
        throughput.synchronize(device)
    events = prof.key_averages()
    self_us = defaultdict(float)
    for event in events:
        on_device = device.type == "cuda"
        self_us[kind_of(event.key)] += (
            event.self_device_time_total if on_device else event.self_cpu_time_total
        )
    step_ms = sum(self_us.values()) / 1000 / args.steps
    peak_gflops = max(r.gflops for r in peak.kernel_rates(device, 1.0, [precision.name]))

    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {throughput.machine_description(device)['cpu']}; precision {precision.name}")
    print(f"model {args.model}, batch {args.batch_size}, {flops / 1e9:.1f} GFLOP per step")
    print(f"step {step_ms:.0f} ms (profiled, self times summed); peak {peak_gflops:.0f} GFLOP/s")
    rate = flops / step_ms / 1e6
    print(f"counted rate {rate:.0f} GFLOP/s = {rate / peak_gflops:.3f} of peak\n")
    print("| kind | ms per step | share |\n|---|---:|---:|")
    for kind, us in sorted(self_us.items(), key=lambda item: -item[1]):
        print(f"| {kind} | {us / 1000 / args.steps:.1f} | {us / 1000 / args.steps / step_ms:.1%} |")
    flop_kinds = self_us["convolution"] + self_us["matmul (FC layers, GEMM convolutions)"]
    print(
        f"\nconvolutions and matmuls: {flop_kinds / 1000 / args.steps / step_ms:.1%} of the step, "
        f"at {flops / (flop_kinds / args.steps) / 1e3:.0f} GFLOP/s while they run "
        f"({flops / (flop_kinds / args.steps) / 1e3 / peak_gflops:.2f} of peak)"
    )

    print("\nforward pass by layer type (hooks, no profiler; ops inside a layer count for it):")
    print("| layer type | forward ms per step | share of the forward |\n|---|---:|---:|")
    forward_ms = forward_by_layer_type(parts, model, x, args.steps)
    for name, ms in sorted(forward_ms.items(), key=lambda item: -item[1]):
        print(f"| {name} | {ms:.1f} | {ms / sum(forward_ms.values()):.1%} |")

    print("\nforward convolutions by input shape (the profiler's FLOP estimate):")
    print("| input shape (N, C, H, W) | ms per step | GFLOP/s | of peak |\n|---|---:|---:|---:|")
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key in ("aten::conv2d",) and event.flops:
            ms = event.cpu_time_total / 1000 / args.steps
            rate = event.flops / (event.cpu_time_total * 1e3)
            shape = event.input_shapes[0] if event.input_shapes else "?"
            print(f"| {shape} | {ms:.1f} | {rate:.0f} | {rate / peak_gflops:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
