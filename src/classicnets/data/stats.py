"""Per-channel mean/std and the RGB principal components of a training split, computed exactly
and cached next to the data.

Sums are kept as exact integers (uint8 pixels; per-chunk float64 products are exact below
2^53), so the result does not depend on the order or on the size of the data set. Values are
on the [0, 1] scale; std is the population std over all pixels of all training images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from classicnets.atomic import atomic_write_text
from classicnets.config import DataConfig
from classicnets.data.datasets import (
    DATASETS,
    FileImageDataset,
    ImageDataset,
    TensorImageDataset,
    UnreadableImageError,
    resolve_root,
)
from classicnets.errors import UserError

log = logging.getLogger(__name__)

STATS_VERSION = 1
CHUNK_IMAGES = 2048
# Lighting PCA for ImageNet when no exact statistics are cached: the eigen-decomposition used
# by fb.resnet.torch (datasets/imagenet.lua), estimated on ImageNet train, on the [0, 1] scale.
IMAGENET_EIGENVALUES = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGENVECTORS = (  # row k is the k-th principal direction (R, G, B)
    (-0.5675, -0.5808, -0.5836),
    (0.7192, -0.0045, -0.6948),
    (0.4009, -0.8140, 0.4203),
)


@dataclass(frozen=True)
class ChannelStats:
    """Statistics of a training split on the [0, 1] scale."""

    name: str
    images: int
    pixels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    eigenvalues: tuple[float, float, float]  # of the RGB covariance, largest first
    eigenvectors: tuple[tuple[float, float, float], ...]  # row k belongs to eigenvalues[k]


class PixelSums:
    """Exact running sums of uint8 RGB pixels: count, per-channel sum, 3x3 sum of products."""

    def __init__(self) -> None:
        self.images = 0
        self.pixels = 0
        self.total = [0, 0, 0]
        self.products = [[0, 0, 0] for _ in range(3)]

    def add(self, images: int, pixels: int, total: Tensor, products: Tensor) -> None:
        self.images += images
        self.pixels += pixels
        for i in range(3):
            self.total[i] += int(total[i])
            for j in range(3):
                self.products[i][j] += int(products[i, j])

    def add_images(self, images: Tensor) -> None:
        """uint8 (B, 3, H, W) or (3, H, W)."""
        batch = (
            images.reshape(-1, 3, images.shape[-2] * images.shape[-1])
            if images.dim() == 4
            else images.reshape(1, 3, -1)
        )
        values = batch.transpose(0, 1).reshape(3, -1).to(torch.float64)
        # exact: every partial sum is an integer below 2^53 for chunks under ~10^11 pixels
        self.add(len(batch), values.shape[1], values.sum(1).round(), (values @ values.T).round())

    def result(self, name: str) -> ChannelStats:
        if self.pixels == 0:
            raise UserError(f"{name}: the training split has no pixels to measure")
        n = self.pixels
        # exact integer covariance * n^2, then one division: no cancellation error
        covariance = torch.tensor(
            [
                [(n * self.products[i][j] - self.total[i] * self.total[j]) for j in range(3)]
                for i in range(3)
            ],
            dtype=torch.float64,
        ) / (float(n) * n * 255.0**2)
        mean = [t / (n * 255.0) for t in self.total]
        std = [float(covariance[i, i].clamp(min=0).sqrt()) for i in range(3)]
        values, vectors = torch.linalg.eigh(covariance)  # ascending; columns are vectors
        rows = []
        for k in (2, 1, 0):
            vector = vectors[:, k]
            vector = -vector if float(vector.sum()) < 0 else vector  # a fixed sign convention
            rows.append((float(vector[0]), float(vector[1]), float(vector[2])))
        return ChannelStats(
            name=name,
            images=self.images,
            pixels=n,
            mean=(mean[0], mean[1], mean[2]),
            std=(std[0], std[1], std[2]),
            # clamp: a rank-deficient covariance (grey images) gives eigenvalues like -1e-17
            eigenvalues=(
                max(0.0, float(values[2])),
                max(0.0, float(values[1])),
                max(0.0, float(values[0])),
            ),
            eigenvectors=tuple(rows),
        )


class _ImageSums(Dataset[tuple[Tensor, Tensor, int, str | None]]):
    """Per-image sums computed in DataLoader workers; unreadable images give zeros."""

    def __init__(self, dataset: FileImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int, str | None]:
        try:
            image, _ = self.dataset[index]
        except UnreadableImageError as error:
            return (
                torch.zeros(3, dtype=torch.float64),
                torch.zeros(3, 3, dtype=torch.float64),
                0,
                str(error),
            )
        values = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        values = values.view(-1, 3).T.to(torch.float64)  # (3, pixels)
        return values.sum(1), values @ values.T, values.shape[1], None


def _first(items: list[Any]) -> Any:
    return items[0]


def compute_stats(name: str, dataset: ImageDataset, num_workers: int = 0) -> ChannelStats:
    """Exact statistics of every pixel of every image in `dataset` (native sizes)."""
    sums = PixelSums()
    if isinstance(dataset, TensorImageDataset):
        for start in range(0, len(dataset), CHUNK_IMAGES):
            sums.add_images(dataset.images[start : start + CHUNK_IMAGES])
        return sums.result(name)
    loader = DataLoader(_ImageSums(dataset), batch_size=None, num_workers=num_workers)
    unreadable = 0
    for done, (total, products, pixels, error) in enumerate(loader, start=1):
        if error is not None:
            unreadable += 1
            log.debug("skipped %s", error)
            continue
        sums.add(1, int(pixels), total, products)
        if done % 10000 == 0:
            log.info("%s: measured %d of %d images", name, done, len(dataset))
    if unreadable:
        log.warning("%s: %d unreadable images were left out of the statistics", name, unreadable)
    return sums.result(name)


def cache_paths(cfg: DataConfig) -> list[Path]:
    """Where stats are cached: beside the data, then under ~/.cache/classicnets."""
    root = resolve_root(cfg).resolve()
    fallback_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "classicnets"
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return [
        root / f".classicnets-stats-{cfg.name}.json",
        fallback_dir / f"stats-{cfg.name}-{digest}.json",
    ]


def _is_writable_dir(path: Path) -> bool:
    # A folder without write bits counts as read-only even for root, who may write anyway.
    try:
        return path.is_dir() and os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)
    except OSError:
        return False


def read_cached_stats(
    cfg: DataConfig, images: int | None = None
) -> tuple[ChannelStats, Path] | None:
    """Cached stats for cfg.name at cfg.root (for `images` training images, if given)."""
    for path in cache_paths(cfg):
        try:
            content = json.loads(path.read_text())
            if content.pop("version") != STATS_VERSION or content.pop("root") != str(
                resolve_root(cfg).resolve()
            ):
                continue
            stats = ChannelStats(
                name=content["name"],
                images=int(content["images"]),
                pixels=int(content["pixels"]),
                mean=tuple(content["mean"]),
                std=tuple(content["std"]),
                eigenvalues=tuple(content["eigenvalues"]),
                eigenvectors=tuple(tuple(row) for row in content["eigenvectors"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if stats.name == cfg.name and (images is None or stats.images == images):
            return stats, path
    return None


def write_cached_stats(cfg: DataConfig, stats: ChannelStats) -> Path | None:
    """Cache beside the data if that folder is writable, else under ~/.cache; never fails."""
    content = {"version": STATS_VERSION, "root": str(resolve_root(cfg).resolve()), **asdict(stats)}
    text = json.dumps(content, indent=1) + "\n"
    for path in cache_paths(cfg):
        if path.parent.exists() and not _is_writable_dir(path.parent):
            continue
        try:
            atomic_write_text(path, text)
            return path
        except UserError as error:
            log.debug("cannot cache stats at %s: %s", path, error)
    log.warning("could not cache the statistics of %s anywhere; they will be recomputed", cfg.name)
    return None


def dataset_stats(cfg: DataConfig, recompute: bool = False) -> tuple[ChannelStats, Path | None]:
    """Stats of the official training split of cfg.name (before val carving and limits)."""
    source = DATASETS.get(cfg.name)(cfg)
    embedded = bool(DATASETS.meta(cfg.name).get("embedded", False))
    if not recompute and not embedded:
        cached = read_cached_stats(cfg, len(source.train))
        if cached is not None:
            return cached
    log.info("%s: measuring %d training images in %s", cfg.name, len(source.train), source.location)
    stats = compute_stats(cfg.name, source.train, cfg.num_workers)
    return stats, (None if embedded else write_cached_stats(cfg, stats))


def lighting_components(cfg: DataConfig) -> tuple[Tensor, Tensor]:
    """(eigenvalues (3,), eigenvectors (3, 3) rows) for AlexNet §4.1 PCA lighting."""
    cached = None if DATASETS.meta(cfg.name).get("embedded") else read_cached_stats(cfg)
    if cached is not None:
        stats = cached[0]
    elif cfg.name == "imagenet":
        log.info("imagenet: PCA lighting with fb.resnet.torch's components (no cached stats)")
        return torch.tensor(IMAGENET_EIGENVALUES), torch.tensor(IMAGENET_EIGENVECTORS)
    else:
        stats = dataset_stats(cfg)[0]
    return torch.tensor(stats.eigenvalues), torch.tensor(stats.eigenvectors)
