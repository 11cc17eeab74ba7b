"""The one loader contract the training engine uses, and the choice between the two loaders:
the in-memory batched loader (memory_loader.py) and the DataLoader one (stream_loader.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
import torchvision.transforms.v2 as v2
from torch import Tensor
from torch.utils.data import DataLoader

from classicnets.config import DataConfig
from classicnets.data.datasets import (
    DatasetInfo,
    FileImageDataset,
    ImageDataset,
    TensorImageDataset,
)
from classicnets.data.memory_loader import WHOLE, MemoryLoader, Shard
from classicnets.data.recipes import train_transform
from classicnets.data.stats import lighting_components
from classicnets.data.stream_loader import SeededTransformDataset, StreamLoader
from classicnets.data.transforms import (
    PCALighting,
    Recipe,
    TestTimeViews,
    ToRGB,
    eval_transform_for,
    resolve_recipe,
)
from classicnets.errors import UserError

log = logging.getLogger(__name__)

# data.in_memory=auto decodes an image-folder data set into memory when it takes at most this.
MEMORY_BUDGET_BYTES = 1024**3


class Loader(Protocol):
    """Batches (x float32 normalised (B, C, H, W) or (B, V, C, H, W), y int64 (B,)) on device."""

    num_samples: int

    def __len__(self) -> int: ...  # batches per epoch

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]: ...


def build_loader(
    dataset: ImageDataset,
    cfg: DataConfig,
    info: DatasetInfo,
    *,
    train: bool,
    batch_size: int,
    seed: int,
    device: torch.device,
    tta: TestTimeViews = "none",
    shard: Shard = WHOLE,
) -> Loader:
    """A training loader (shuffled, augmented) or an eval loader (fixed order, centre crop).

    `batch_size` is the global batch; a `shard` makes this rank's loader of a data-parallel run.

    In-memory sets (digits, CIFAR, synthetic) use the batched in-memory loader unless
    data.in_memory=no. Image folders stream from disk with DataLoader workers, unless
    data.in_memory=yes, or auto and they fit in MEMORY_BUDGET_BYTES at the recipe's size: then
    they are decoded once, as the centre square of each image (a deviation for
    random_resized_crop and vgg, which otherwise see the whole image).
    """
    if len(dataset) == 0:
        raise UserError(f"{info.name}: this split has no images")
    if batch_size < 1:
        raise UserError(f"train.batch_size must be >= 1; got {batch_size}")
    if train and tta != "none":
        raise ValueError("test-time views are for evaluation loaders only")
    recipe = resolve_recipe(cfg, info)
    components = lighting_components(cfg) if train and recipe.lighting else None
    if _use_memory(dataset, cfg, recipe):
        if isinstance(dataset, FileImageDataset):
            dataset = decode_into_memory(dataset, recipe.memory_side, cfg, drop_unreadable=train)
        return MemoryLoader(
            dataset.images.to(device),
            dataset.targets,
            recipe,
            info.mean,
            info.std,
            train=train,
            batch_size=batch_size,
            seed=seed,
            views=tta,
            lighting=None if components is None else (components[0], components[1]),
            shard=shard,
        )
    if train and recipe.flip and recipe.alternate_flip:
        raise UserError(
            "data.flip_mode=alternate needs the in-memory loader (each image's flip depends on "
            "the epoch): set data.in_memory=yes, or data.flip_mode=random"
        )
    if train:
        lighting = None if components is None else PCALighting(*components)
        transform = train_transform(recipe, info, lighting)
    else:
        transform = eval_transform_for(recipe, info, tta)
    return StreamLoader(
        dataset,
        transform,
        train=train,
        batch_size=batch_size,
        seed=seed,
        device=device,
        num_workers=_workers(dataset, cfg.num_workers),
        strict=cfg.strict,
        shard=shard,
    )


def _use_memory(dataset: ImageDataset, cfg: DataConfig, recipe: Recipe) -> bool:
    if cfg.in_memory != "auto":
        return cfg.in_memory == "yes"
    if isinstance(dataset, TensorImageDataset):
        return True
    return len(dataset) * 3 * recipe.memory_side**2 <= MEMORY_BUDGET_BYTES


def _workers(dataset: ImageDataset, num_workers: int) -> int:
    # in-memory tensors decode in microseconds: worker start-up would cost more than it saves
    return 0 if isinstance(dataset, TensorImageDataset) else max(0, num_workers)


def decode_into_memory(
    dataset: FileImageDataset, side: int, cfg: DataConfig, drop_unreadable: bool
) -> TensorImageDataset:
    """Decode every image once to its centre square at `side` pixels, uint8 (N, 3, side, side).

    Unreadable images are dropped (training) or kept as black images (evaluation, so rows
    still match sample_ids); with data.strict=true they stop the run.
    """
    log.info("decoding %d images into memory at %dx%d (centre squares)", len(dataset), side, side)
    decode = v2.Compose([ToRGB(), v2.Resize(side), v2.CenterCrop(side), v2.PILToTensor()])
    loader = DataLoader(
        SeededTransformDataset(dataset, decode),
        batch_size=64,
        sampler=[(index, 0) for index in range(len(dataset))],
        num_workers=max(0, cfg.num_workers),
        collate_fn=_as_list,
    )
    images = torch.zeros(len(dataset), 3, side, side, dtype=torch.uint8)
    failed: list[int] = []
    position = 0
    for items in loader:
        for image, _, why in items:
            if why is not None:
                if cfg.strict:
                    raise UserError(f"unreadable image {why} (data.strict=true)")
                failed.append(position)
            else:
                images[position] = image
            position += 1
    kept = torch.ones(len(dataset), dtype=torch.bool)
    if failed:
        kept[failed] = not drop_unreadable
        action = "dropped" if drop_unreadable else "kept as black images"
        log.warning("%d unreadable images %s", len(failed), action)
    ids = [path for (path, _), keep in zip(dataset.samples, kept.tolist(), strict=True) if keep]
    return TensorImageDataset(images[kept], dataset.targets[kept], ids)


def _as_list(items: list[Any]) -> list[Any]:
    return items


def loader_from_transform(
    dataset: ImageDataset,
    transform: Callable[[Any], Tensor],
    batch_size: int,
    device: torch.device,
    num_workers: int | None = None,
) -> Loader:
    """An eval loader applying a given torchvision transform, e.g. `weights.transforms()`."""
    if len(dataset) == 0:
        raise UserError("this split has no images")
    workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    return StreamLoader(
        dataset,
        transform,
        train=False,
        batch_size=batch_size,
        seed=0,
        device=device,
        num_workers=_workers(dataset, workers),
        strict=False,
    )
