"""Throughput of the in-memory batched loader next to a PIL + torchvision + DataLoader pipeline.

Both produce CIFAR-shaped training batches (random crop 32 with 4-pixel padding, horizontal
flip, normalise) from the same 50,000 x 3 x 32 x 32 uint8 synthetic images, batch 128, in one
run. A third line times our DataLoader path (per-sample seeded transforms) for comparison.

    .venv/bin/python benchmarks/data_pipeline.py [--images 50000] [--workers 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Iterable

import numpy as np
import torch
import torchvision
import torchvision.transforms.v2 as v2
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from classicnets import allocator
from classicnets.config import DataConfig
from classicnets.data import DatasetInfo, TensorImageDataset, build_loader
from classicnets.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from classicnets.run_record import cpu_name

INFO = DatasetInfo("cifar10", [str(i) for i in range(10)], 32, CIFAR10_MEAN, CIFAR10_STD)


class PilImages(Dataset[tuple[torch.Tensor, int]]):
    """What torchvision.datasets.CIFAR10 does per item: HWC uint8 -> PIL -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: v2.Compose) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def images_per_second(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, int]:
    start, count = time.perf_counter(), 0
    for x, _ in batches:
        count += len(x)
    return count / (time.perf_counter() - start), count


def main() -> None:
    allocator.configure()  # before the first tensor (classicnets/allocator.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs of the fast loader")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads in this process (0 = default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    dataset = TensorImageDataset(images, labels, [str(i) for i in range(args.images)])
    device = torch.device("cpu")

    config = DataConfig(name="cifar10", augment="crop_flip", in_memory="yes")
    fast = build_loader(
        dataset, config, INFO, train=True, batch_size=args.batch_size, seed=0, device=device
    )
    next(iter(fast.epoch(0)))  # warm-up
    fast_rates = [images_per_second(fast.epoch(e))[0] for e in range(args.epochs)]
    fast_rate = max(fast_rates)

    transform = v2.Compose(
        [
            v2.RandomCrop(32, padding=4),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(CIFAR10_MEAN), list(CIFAR10_STD)),
        ]
    )
    hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    baseline = DataLoader(
        PilImages(hwc, labels.numpy(), transform),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    pil_rate, _ = images_per_second(baseline)

    ours = build_loader(
        dataset,
        DataConfig(name="cifar10", augment="crop_flip", in_memory="no", num_workers=args.workers),
        INFO,
        train=True,
        batch_size=args.batch_size,
        seed=0,
        device=device,
    )
    stream_rate, _ = images_per_second(ours.epoch(0))

    print(f"date: {datetime.date.today().isoformat()}")
    print(f"command: {' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"cpu: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    print(f"load average before the run: {load_before}; after: {load}")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    print(f"data: {args.images} x 3 x 32 x 32 uint8, batch {args.batch_size}, crop+flip+normalise")
    print(f"in-memory batched loader:           {fast_rate:10.0f} images/s (best of {args.epochs})")
    print(f"PIL + torchvision + DataLoader({args.workers}):  {pil_rate:10.0f} images/s")
    print(f"ours, DataLoader path ({args.workers} workers):  {stream_rate:10.0f} images/s")
    print(f"ratio in-memory / PIL baseline: {fast_rate / pil_rate:.1f}x")


if __name__ == "__main__":
    main()
