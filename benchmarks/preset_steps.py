"""Time a few training steps of each reproduction preset and estimate its whole run's wall time.

    python benchmarks/preset_steps.py [--steps 2] [--timing-batch 32] [--presets a,b]

Each preset's own model (with its knobs), optimizer and image size; random images in
channels_last, as fit() trains. A step is forward, loss, backward and the optimizer step
(after one untimed warm-up step), timed at --timing-batch images (so each timing stays under a
minute on a small CPU) and scaled to the preset's batch in proportion. The run's estimate is
epochs x (train steps + eval of the test set at a third of a step per image, and of val where
there is one). Data loading is not timed. Results depend on the CPU and its load:
docs/reproductions.md quotes them with lscpu.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

import torch
from torch import nn

from classicnets.config import RunConfig, knob_values, load_config
from classicnets.models import build_model, model_info
from classicnets.precision import cpu_has_native_bf16
from classicnets.train.optim import build_optimizer

PRESETS = (
    "alexnet_imagenette",
    "alexnet_bn_imagenette",
    "alexnet_cifar10",
    "alexnet_lrn_cifar10_128",
    "vgg13_cifar10_128",
    "vgg16_cifar10",
    "vgg16_bn_cifar10",
)
TRAIN_IMAGES = {"cifar10": 50_000, "imagenette": 9_469}
TEST_IMAGES = {"cifar10": 10_000, "imagenette": 13_394}  # Imagenette: the CSV's rows
EVAL_SHARE = 1 / 3  # a forward pass costs about a third of forward + backward


def step_seconds(config: RunConfig, precision: str, steps: int, timing_batch: int) -> float:
    """Median seconds per training step of `config`'s model at its image size and batch (timed
    at `timing_batch` images and scaled in proportion)."""
    info = model_info(config.model.name)
    side = config.data.image_size or info.input_size[-1]
    model = build_model(config.model.name, num_classes=10, **knob_values(config.model))
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = build_optimizer(model, config.optim)
    batch = min(config.train.batch_size, timing_batch)
    x = torch.randn(batch, 3, side, side).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with autocast:
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    median = sorted(times[1:])[len(times[1:]) // 2]
    return median * config.train.batch_size / batch


def run_hours(config: RunConfig, seconds: float) -> float:
    """Estimated hours of the whole run: training steps plus the test (and val) passes."""
    data = config.data
    train = TRAIN_IMAGES[data.name]
    val = round(train * data.val_fraction)
    steps = math.ceil((train - val) / config.train.batch_size)
    per_image = seconds / config.train.batch_size
    epoch = steps * seconds + (val + TEST_IMAGES[data.name]) * per_image * EVAL_SHARE
    return config.train.epochs * epoch / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--timing-batch", type=int, default=32)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--precision", default="fp32,bf16")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"native bf16: {cpu_has_native_bf16()}"
    )
    print("| preset | precision | batch | side | s/step | epochs | est. run (h) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for preset in args.presets.split(","):
        config = load_config(preset)
        side = config.data.image_size or model_info(config.model.name).input_size[-1]
        for precision in args.precision.split(","):
            seconds = step_seconds(config, precision, args.steps, args.timing_batch)
            print(
                f"| {preset} | {precision} | {config.train.batch_size} | {side} | "
                f"{seconds:.2f} | {config.train.epochs} | {run_hours(config, seconds):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
