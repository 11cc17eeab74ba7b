"""Deterministic synthetic images of any size and class count, for tests and benchmarks.

Each class has a fixed random 4x4 colour template, up-sampled to the image size; every image
is its class template plus Gaussian pixel noise. Classes differ in colour and layout, so a
small network learns them (and can overfit them to 100%) under crops and flips.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from classicnets.config import DataConfig
from classicnets.data.datasets import DATASETS, DatasetInfo, SourceSplits, TensorImageDataset
from classicnets.errors import UserError

SYNTHETIC_SEED = 1729  # fixed: the same config always gives the same images
TEMPLATE_SIDE = 4
NOISE_STD = 24.0  # in 0..255 pixel units


def synthetic_images(
    num_classes: int, size: int, count: int, split: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` uint8 images (count, 3, size, size) with balanced labels; `split` picks the noise."""
    templates = torch.empty(num_classes, 3, TEMPLATE_SIDE, TEMPLATE_SIDE).uniform_(
        40.0, 215.0, generator=torch.Generator().manual_seed(SYNTHETIC_SEED)
    )
    templates = F.interpolate(templates, size=size, mode="bilinear", align_corners=False)
    generator = torch.Generator().manual_seed(SYNTHETIC_SEED + 1 + split)
    labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=generator)]
    noise = torch.randn(count, 3, size, size, generator=generator) * NOISE_STD
    images = (templates[labels] + noise).round().clamp(0, 255).to(torch.uint8)
    return images, labels


def channel_mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of uint8 (N, 3, H, W) images on the [0, 1] scale."""
    values = images.transpose(0, 1).reshape(3, -1).to(torch.float64) / 255.0
    return tuple(values.mean(1).tolist()), tuple(values.std(1, correction=0).tolist())


@DATASETS.register(
    "synthetic", augment="crop_flip", padding_fraction=0.125, flip=True, embedded=True
)
def synthetic(cfg: DataConfig) -> SourceSplits:
    """data.synthetic_count train and as many test images of data.synthetic_size pixels."""
    if cfg.num_classes < 1 or cfg.synthetic_count < 1 or cfg.synthetic_size < TEMPLATE_SIDE:
        raise UserError(
            "synthetic needs data.num_classes >= 1, data.synthetic_count >= 1 and "
            f"data.synthetic_size >= {TEMPLATE_SIDE}"
        )
    splits = []
    for split, name in enumerate(("train", "test")):
        images, labels = synthetic_images(
            cfg.num_classes, cfg.synthetic_size, cfg.synthetic_count, split
        )
        ids = [f"{name}/{i}" for i in range(len(images))]
        splits.append(TensorImageDataset(images, labels, ids))
    mean, std = channel_mean_std(splits[0].images)
    info = DatasetInfo(
        name="synthetic",
        classes=[f"class_{i}" for i in range(cfg.num_classes)],
        image_size=cfg.synthetic_size,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
    )
    return SourceSplits(splits[0], splits[1], info, "embedded")
