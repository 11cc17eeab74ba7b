"""Training throughput of classicnets next to the machine's measured peak and two baselines.

One process, one model, one batch size. The modes run interleaved in rounds (each round runs
every mode for a few steps, in an order rotated from round to round), so they share the
machine's load at that moment; each ratio is the median over rounds of the ratio measured
within a round.

  peak      (a) the machine's peak GFLOP/s for the precision in use: the fastest of a large
                matmul and large 3x3 and 1x1 convolutions in it (benchmarks/peak.py)
  compute   (b) training steps on one batch already in memory (no loader, no augmentation):
                images/s, and GFLOP/s from torch.utils.flop_counter.FlopCounterMode on one
                training step (forward + backward)
  pipeline  (c) classicnets as users run it: RunParts from build_run_parts, then
                train_one_epoch (in-memory loader, crop + flip augmentation, the real step)
  seed      (d) the popular tutorial pipeline: a torchvision-style Dataset with per-image PIL
                transforms, DataLoader(num_workers=2), a plain loop, contiguous tensors, and
                the model as a tutorial writes it: torch's nn.LocalResponseNorm, nn.Dropout and
                nn.AdaptiveAvgPool2d where classicnets has faster ones (kernels/); the
                same model otherwise
  stock     (g) stock PyTorch best practice (stock_train_steps): the same net of torch's own
                modules, channels_last, uint8 images in memory with a batched crop and flip,
                bf16 autocast where the hardware runs it natively
  eval      (e) evaluation images/s: classicnets.evaluate next to the tutorial's no_grad loop
  layout        compute-only steps of two model copies, contiguous and channels_last
  (f) peak resident memory of this process and of its DataLoader workers

Efficiency is counted GFLOP/s (FlopCounterMode) over the peak of the precision in use.

    .venv/bin/python benchmarks/throughput.py --model vgg16_bn_cifar --batch-size 128
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from classicnets import allocator
from classicnets.config import RunConfig, load_config
from classicnets.data import TensorImageDataset, build_loader
from classicnets.evaluate.loop import evaluate
from classicnets.kernels import use_kernels
from classicnets.models import build_model, model_info
from classicnets.precision import auto_amp
from classicnets.run_record import cpu_name
from classicnets.train.loop import EpochControl, train_one_epoch
from classicnets.train.optim import current_lr
from classicnets.train.setup import RunParts, build_run_parts
from classicnets.train.state import EpochSums, StopFlag, TrainState

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peak

MODES = ("peak", "compute", "pipeline", "seed", "stock", "eval", "layout")
MATMUL_SIZE = 2048
CIFAR_ROOT = "/work/shared/data"


# --- the machine -----------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so the clock measures finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def machine_description(device: torch.device) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_name(),
        "cpu_flags": peak.cpu_flags(),
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_threads": torch.get_num_threads(),
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "malloc": allocator.malloc_setting(),
        "device": str(device),
    }


def matmul_gflops(device: torch.device, size: int = MATMUL_SIZE, min_seconds: float = 1.0) -> float:
    """fp32 (size x size) @ (size x size) GFLOP/s, timed over at least `min_seconds`."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # first call pays for allocation and kernel selection
    synchronize(device)
    count, start = 0, time.perf_counter()
    while count < 2 or time.perf_counter() - start < min_seconds:
        a @ b
        count += 1
        synchronize(device)
    return 2.0 * size**3 * count / (time.perf_counter() - start) / 1e9


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process and of its (finished) children, in MiB."""
    kib = 1024.0  # Linux reports ru_maxrss in KiB
    peak = {
        "process_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
        "workers_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
    }
    if device.type == "cuda":
        peak["cuda_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


# --- (b) compute only ------------------------------------------------------------------------


def training_step_flops(model: nn.Module, x: Tensor, y: Tensor) -> int:
    """FLOPs of one forward + backward (matmuls and convolutions, FlopCounterMode's count)."""
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def compute_step(parts: RunParts, model: nn.Module, x: Tensor, y: Tensor) -> None:
    """One optimizer step on a batch already in memory, with the run's precision."""
    precision = parts.precision
    with torch.autocast(
        precision.device.type,
        dtype=precision.amp_dtype or torch.float32,
        enabled=precision.amp_dtype is not None,
    ):
        loss = F.cross_entropy(model(x), y)
    parts.optimization.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
    parts.optimization.scaler.step(parts.optimization.optimizer)
    parts.optimization.scaler.update()
    parts.optimization.optimizer.zero_grad(set_to_none=True)


# --- (c) the classicnets pipeline ------------------------------------------------------------


@dataclass
class Pipeline:
    """RunParts and the loop's progress, so repeated calls continue one training run."""

    config: RunConfig
    parts: RunParts
    state: TrainState = field(default_factory=TrainState)
    epoch: int = 1

    def train_seconds(self, steps: int) -> float:
        """Run `steps` optimizer steps through train_one_epoch; seconds taken."""
        loader = self.parts.data.train_loader
        if steps > len(loader):
            raise ValueError(f"{steps} steps do not fit in one epoch of {len(loader)} batches")
        if self.state.batches_done + steps > len(loader):
            self.epoch, self.state.batches_done = self.epoch + 1, 0
        device = self.parts.precision.device
        sums = EpochSums.start(current_lr(self.parts.optimization.optimizer), device, {})
        first_step = self.state.global_step
        synchronize(device)
        start = time.perf_counter()
        train_one_epoch(
            self.parts,
            self.config.train,
            self.epoch,
            self.state,
            sums,
            EpochControl(StopFlag(), first_step + steps),
        )
        synchronize(device)
        seconds = time.perf_counter() - start
        assert self.state.global_step - first_step == steps
        return seconds


def pipeline_config(
    model: str,
    batch_size: int,
    device: str,
    data: str,
    images: int,
    overrides: Sequence[str] = (),
) -> RunConfig:
    """The benchmark run: SGD (the config defaults), CIFAR-shaped data, no val split."""
    data_settings = (
        ["data.name=cifar10", f"data.root={CIFAR_ROOT}", f"data.limit={images}"]
        if data == "cifar10"
        else [
            "data.name=synthetic",
            "data.num_classes=10",
            f"data.synthetic_size={model_info(model).input_size[-1]}",
            f"data.synthetic_count={images}",
        ]
    )
    return load_config(
        None,
        [
            f"model.name={model}",
            *data_settings,
            "data.val_fraction=0",
            f"train.batch_size={batch_size}",
            f"train.device={device}",
            "train.progress=false",
            *overrides,
        ],
    )


# --- (d) the tutorial ("seed-style") pipeline ------------------------------------------------


class TutorialCifar(Dataset[tuple[Tensor, int]]):
    """What torchvision.datasets.CIFAR10 does per item: HWC uint8 array -> PIL -> transform."""

    def __init__(self, images: np.ndarray, targets: list[int], transform: T.Compose) -> None:
        self.data, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def tutorial_loader(
    dataset: TensorImageDataset,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    workers: int,
    train: bool,
) -> DataLoader[tuple[Tensor, int]]:
    side = dataset.images.shape[-1]
    crop = [T.RandomCrop(side, padding=side // 8), T.RandomHorizontalFlip()]  # CIFAR: 32, pad 4
    augment = crop if train else []
    transform = T.Compose([*augment, T.ToTensor(), T.Normalize(mean, std)])
    images = dataset.images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, side, side, 3)
    return DataLoader(
        TutorialCifar(images, dataset.targets.tolist(), transform),
        batch_size=batch_size,
        shuffle=train,
        num_workers=workers,
    )


def tutorial_train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[Tensor, Tensor]],
    steps: int,
    device: torch.device,
) -> float:
    """The tutorials' loop body, `steps` times; returns the running loss (forces .item())."""
    model.train()
    running_loss = 0.0
    for _ in range(steps):
        inputs, labels = next(batches)
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    return running_loss


def tutorial_eval_batches(
    model: nn.Module, batches: Iterator[tuple[Tensor, Tensor]], count: int, device: torch.device
) -> int:
    """The tutorials' test loop over `count` batches; returns the number correct."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for _ in range(count):
            images, labels = next(batches)
            images, labels = images.to(device), labels.to(device)
            _, predicted = torch.max(model(images), 1)
            correct += int((predicted == labels).sum().item())
    return correct


# --- (g) stock PyTorch best practice ---------------------------------------------------------


def stock_train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    targets: Tensor,
    mean: Tensor,
    std: Tensor,
    steps: int,
    batch_size: int,
    amp_dtype: torch.dtype | None,
) -> None:
    """What an expert writes without classicnets: uint8 images already on the device, one
    batched random crop (pad side/8) and flip, channels_last, autocast, set_to_none."""
    model.train()
    count, side = len(images), images.shape[-1]
    pad = side // 8
    steps_range = torch.arange(side, device=images.device)
    for _ in range(steps):
        index = torch.randint(0, count, (batch_size,), device=images.device)
        x = F.pad(images[index], (pad, pad, pad, pad))
        top, left = torch.randint(0, 2 * pad + 1, (2, batch_size, 1), device=images.device)
        rows, cols = (top + steps_range)[:, None, :, None], (left + steps_range)[:, None, None, :]
        batch = torch.arange(batch_size, device=images.device)[:, None, None, None]
        x = x[batch, torch.arange(3, device=images.device)[None, :, None, None], rows, cols]
        flip = torch.rand(batch_size, device=images.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = ((x.float() - mean) / std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(images.device.type, amp_dtype, enabled=amp_dtype is not None):
            loss = F.cross_entropy(model(x), targets[index])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def _stock_measure(parts: RunParts, settings: Settings) -> Callable[[], dict[str, float]]:
    """The same net of torch's own modules, trained by stock_train_steps."""
    device, info = parts.precision.device, parts.info
    amp = auto_amp(device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    model = tutorial_model(settings.model, len(info.classes))
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = parts.data.splits.train.images.to(device)
    targets = parts.data.splits.train.targets.to(device)
    mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(info.std, device=device).view(1, 3, 1, 1) * 255

    def run(steps: int) -> None:
        stock_train_steps(
            model, optimizer, images, targets, mean, std, steps, settings.batch_size, amp_dtype
        )

    def measure() -> dict[str, float]:
        run(1)  # untimed
        return {
            "stock": settings.batch_size
            * settings.steps
            / _timed(device, lambda: run(settings.steps), 1)
        }

    return measure


# --- the benchmark ---------------------------------------------------------------------------


@dataclass
class Settings:
    model: str
    batch_size: int
    device: str = "auto"
    steps: int = 3
    eval_steps: int = 3
    rounds: int = 3
    workers: int = 2
    data: str = "synthetic"
    images: int = 0  # 0 = enough for the steps
    modes: tuple[str, ...] = MODES
    overrides: tuple[str, ...] = ()
    peak_seconds: float = 0.3  # per peak kernel and round
    peak_shrink: int = 1  # smoke tests only: smaller peak kernels


@dataclass
class Result:
    settings: dict[str, Any]
    machine: dict[str, Any]
    precision: dict[str, Any]
    flops_per_step: int
    rounds: list[dict[str, float]]  # one rate per mode per round
    medians: dict[str, float]
    ratios: dict[str, float]
    memory: dict[str, float]
    load_average: dict[str, list[float]]


def median_ratios(rounds: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each ratio, within every round that measured both sides, then the median over rounds."""
    pairs = {
        "compute_efficiency": ("compute_gflops", "peak_gflops"),  # b / a
        "pipeline_efficiency_of_peak": ("pipeline_gflops", "peak_gflops"),  # c / a
        "pipeline_over_compute": ("pipeline", "compute"),  # c / b
        "speedup_over_seed": ("pipeline", "seed"),  # c / d
        "speedup_over_stock": ("pipeline", "stock"),  # c / g
        "eval_speedup_over_seed": ("eval", "seed_eval"),  # e: ours / tutorial
        "channels_last_over_contiguous": ("channels_last", "contiguous"),
    }
    ratios = {}
    for name, (top, bottom) in pairs.items():
        values = [r[top] / r[bottom] for r in rounds if top in r and bottom in r]
        if values:
            ratios[name] = statistics.median(values)
    return ratios


def run_benchmark(settings: Settings, log: Callable[[str], None] = print) -> Result:
    unknown = sorted(set(settings.modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    batch = settings.batch_size
    images = settings.images or batch * max(settings.steps + 1, settings.eval_steps + 1, 4)
    config = pipeline_config(
        settings.model, batch, settings.device, settings.data, images, settings.overrides
    )
    load_before = list(os.getloadavg())
    parts = build_run_parts(config, None)
    device, precision = parts.precision.device, parts.precision
    modes = set(settings.modes)
    pipeline = Pipeline(config, parts)

    x, y = next(iter(parts.data.train_loader.epoch(0)))
    x_in = x.contiguous(memory_format=torch.channels_last) if precision.channels_last else x
    flops = training_step_flops(parts.model.module, x_in, y)

    measures: dict[str, Callable[[], dict[str, float]]] = {}
    if "peak" in modes:
        in_use = [precision.name]
        measures["peak"] = lambda: {
            "peak_gflops": max(
                r.gflops
                for r in peak.kernel_rates(
                    device, settings.peak_seconds, in_use, settings.peak_shrink
                )
            )
        }
    if "compute" in modes:

        def measure_compute() -> dict[str, float]:
            compute_step(parts, parts.model.wrapped, x_in, y)  # untimed, as in every mode (below)
            seconds = _timed(
                device, lambda: compute_step(parts, parts.model.wrapped, x_in, y), settings.steps
            )
            return {
                "compute": batch * settings.steps / seconds,
                "compute_gflops": flops * settings.steps / seconds / 1e9,
            }

        measures["compute"] = measure_compute
    if "layout" in modes:
        measures["layout"] = _layout_measure(parts, x, y, settings.steps)
    if "pipeline" in modes:

        def measure_pipeline() -> dict[str, float]:
            pipeline.train_seconds(1)  # untimed
            seconds = pipeline.train_seconds(settings.steps)
            return {
                "pipeline": batch * settings.steps / seconds,
                "pipeline_gflops": flops * settings.steps / seconds / 1e9,
            }

        measures["pipeline"] = measure_pipeline
    if "seed" in modes:
        measures["seed"] = _seed_measure(parts, settings)
    if "stock" in modes:
        measures["stock"] = _stock_measure(parts, settings)
    if "eval" in modes:
        measures.update(_eval_measures(config, parts, settings))

    rounds = []
    order = list(measures.values())
    for index in range(settings.rounds):
        row: dict[str, float] = {}
        # Every training mode starts its round with one untimed step, as a long run is all
        # steps after the first: the first step after a mode switch pays for the heap's
        # growth to the new mode's buffers and for cold caches. The order also rotates, so
        # no mode always runs first after another one.
        shift = index % len(order)
        for measure in order[shift:] + order[:shift]:
            row.update(measure())
        rounds.append(row)
        log(f"round {index + 1}/{settings.rounds}: " + _format_row(row))
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    return Result(
        settings=asdict(settings),
        machine=machine_description(device),
        precision={
            "name": precision.name,
            "amp_dtype": str(precision.amp_dtype) if precision.amp_dtype else "off",
            "channels_last": precision.channels_last,
        },
        flops_per_step=flops,
        rounds=rounds,
        medians=medians,
        ratios=median_ratios(rounds),
        memory=peak_memory_mib(device),
        load_average={"before": load_before, "after": list(os.getloadavg())},
    )


def _timed(device: torch.device, step: Callable[[], object], steps: int) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - start


def _layout_measure(
    parts: RunParts, x: Tensor, y: Tensor, steps: int
) -> Callable[[], dict[str, float]]:
    """Compute-only steps of two copies of the model, contiguous and channels_last."""
    device = parts.precision.device
    copies = {}
    for name, layout in (
        ("contiguous", torch.contiguous_format),
        ("channels_last", torch.channels_last),
    ):
        model = copy.deepcopy(parts.model.module).to(memory_format=layout)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        batch = x.contiguous(memory_format=layout)
        copies[name] = (model, optimizer, batch)

    def step(name: str) -> None:
        model, optimizer, batch = copies[name]
        F.cross_entropy(model(batch), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def measure() -> dict[str, float]:
        rates = {}
        for name in copies:
            step(name)  # untimed
            rates[name] = len(x) * steps / _timed(device, lambda n=name: step(n), steps)
        return rates

    return measure


def tutorial_model(name: str, num_classes: int) -> nn.Module:
    """The registry model as a tutorial writes it: torch's nn.Conv2d, nn.LocalResponseNorm,
    nn.Dropout and nn.AdaptiveAvgPool2d layers, not our faster ones."""
    model = build_model(name, num_classes=num_classes)
    use_kernels(model, "torch", torch.device("cpu"))
    return model


def _seed_measure(parts: RunParts, settings: Settings) -> Callable[[], dict[str, float]]:
    """The tutorial pipeline with its own model (contiguous, fp32) and a fresh DataLoader
    iterator each round: one untimed step starts the workers, then `steps` timed steps."""
    device = parts.precision.device
    info = parts.info
    model = tutorial_model(settings.model, len(info.classes)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loader = tutorial_loader(
        parts.data.splits.train,
        info.mean,
        info.std,
        settings.batch_size,
        settings.workers,
        train=True,
    )

    def measure() -> dict[str, float]:
        batches = iter(loader)
        tutorial_train_steps(model, optimizer, batches, 1, device)
        synchronize(device)
        start = time.perf_counter()
        tutorial_train_steps(model, optimizer, batches, settings.steps, device)
        synchronize(device)
        seconds = time.perf_counter() - start
        del batches  # stops the workers, so they do not run during the other modes
        return {"seed": settings.batch_size * settings.steps / seconds}

    return measure


def _eval_measures(
    config: RunConfig, parts: RunParts, settings: Settings
) -> dict[str, Callable[[], dict[str, float]]]:
    """classicnets' evaluate() on its eval loader, and the tutorial's test loop."""
    device, info, count = parts.precision.device, parts.info, settings.eval_steps
    ours = build_loader(
        parts.data.splits.test,
        config.data,
        info,
        train=False,
        batch_size=settings.batch_size,
        seed=config.train.seed,
        device=device,
    )
    model = tutorial_model(settings.model, len(info.classes)).to(device)
    tutorial = tutorial_loader(
        parts.data.splits.test,
        info.mean,
        info.std,
        settings.batch_size,
        settings.workers,
        train=False,
    )
    num_classes = len(info.classes)

    def ours_once(batches: int) -> None:
        evaluate(
            parts.model.wrapped,
            itertools.islice(ours.epoch(0), batches),
            parts.precision,
            num_classes,
        )

    def measure_ours() -> dict[str, float]:
        ours_once(1)  # untimed, as the tutorial's first batch (below)
        seconds = _timed(device, lambda: ours_once(count), 1)
        return {"eval": settings.batch_size * count / seconds}

    def measure_tutorial() -> dict[str, float]:
        batches = iter(tutorial)
        tutorial_eval_batches(model, batches, 1, device)
        synchronize(device)
        start = time.perf_counter()
        tutorial_eval_batches(model, batches, count, device)
        synchronize(device)
        seconds = time.perf_counter() - start
        del batches
        return {"seed_eval": settings.batch_size * count / seconds}

    return {"eval": measure_ours, "seed_eval": measure_tutorial}


def _format_row(row: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.1f}" for key, value in row.items())


# --- output ----------------------------------------------------------------------------------


UNITS = {
    "peak_gflops": "GFLOP/s  (a) peak of the precision in use",
    "compute": "images/s (b) compute only",
    "compute_gflops": "GFLOP/s  (b) compute only",
    "pipeline": "images/s (c) classicnets pipeline",
    "pipeline_gflops": "GFLOP/s  (c) classicnets pipeline",
    "stock": "images/s (g) stock PyTorch best practice",
    "seed": "images/s (d) tutorial pipeline",
    "eval": "images/s (e) classicnets evaluate",
    "seed_eval": "images/s (e) tutorial test loop",
    "contiguous": "images/s compute only, contiguous",
    "channels_last": "images/s compute only, channels_last",
}


def report_lines(result: Result, command: str) -> list[str]:
    machine, settings = result.machine, result.settings
    lines = [
        f"date {machine['date']}; command: {command}",
        f"machine: {machine['cpu']} ({machine['cores']} cores), GPU {machine['gpu'] or 'none'}, "
        f"torch {machine['torch']}, {machine['torch_threads']} torch threads, "
        f"device {machine['device']}; huge pages THP_MEM_ALLOC_ENABLE="
        f"{machine['thp_mem_alloc']}, malloc: {machine['malloc']}",
        f"CPU flags: {machine['cpu_flags']}",
        f"model {settings['model']}, batch {settings['batch_size']}, "
        f"{result.flops_per_step / settings['batch_size'] / 1e9:.3f} GFLOP per image per step; "
        f"precision amp={result.precision['amp_dtype']}, "
        f"channels_last={result.precision['channels_last']}",
        f"medians over {len(result.rounds)} rounds of {settings['steps']} steps "
        f"({settings['eval_steps']} eval batches):",
    ]
    for key, value in result.medians.items():
        lines.append(f"  {value:12.2f} {UNITS.get(key, key)}")
    for key, value in result.ratios.items():
        lines.append(f"  {value:12.3f} {key}")
    lines.append("peak memory: " + ", ".join(f"{k} {v:.0f}" for k, v in result.memory.items()))
    lines.append(
        "load average before / after: "
        + " / ".join(
            ", ".join(f"{v:.1f}" for v in result.load_average[w]) for w in ("before", "after")
        )
    )
    return lines


def parse_args(argv: Sequence[str]) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per round")
    parser.add_argument("--eval-steps", type=int, default=3, help="timed eval batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="tutorial DataLoader workers")
    parser.add_argument("--data", choices=("synthetic", "cifar10"), default="synthetic")
    parser.add_argument("--images", type=int, default=0, help="training images (0 = enough)")
    parser.add_argument("--modes", default=",".join(MODES[:6]), help=f"from {','.join(MODES)}")
    parser.add_argument("--set", action="append", default=[], help="config override a.b=value")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    settings = Settings(
        model=args.model,
        batch_size=args.batch_size,
        device=args.device,
        steps=args.steps,
        eval_steps=args.eval_steps,
        rounds=args.rounds,
        workers=args.workers,
        data=args.data,
        images=args.images,
        modes=tuple(m for m in args.modes.split(",") if m),
        overrides=tuple(args.set),
    )
    return settings, args


def main(argv: Sequence[str] | None = None) -> int:
    allocator.configure()  # before the first tensor (classicnets/allocator.py)
    settings, args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = " ".join([".venv/bin/python", "benchmarks/throughput.py", *(argv or sys.argv[1:])])
    result = run_benchmark(settings, log=lambda line: print(line, flush=True))
    print("\n".join(report_lines(result, command)))
    if args.json:
        payload = asdict(result) | {"command": command}
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
