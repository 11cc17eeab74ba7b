"""The fast loader for data sets that fit in memory, after airbench (Jordan 2024,
arXiv:2404.00498): uint8 images stay resident on the training device, each epoch is a seeded
permutation, and crop/flip/resize/normalise run batched on tensors. No PIL, no workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from classicnets.data import batch_transforms as bt
from classicnets.data.recipes import batched_train_crop
from classicnets.data.seeds import generator_for
from classicnets.data.transforms import (
    SHIFTED_VIEWS,
    Recipe,
    TestTimeViews,
    translate_flip_views,
)

# Stream tags, so the permutation and the batch draws never share a seed.
PERMUTATION_STREAM = 0
BATCH_STREAM = 1
FIRST_FLIP_STREAM = 2  # data.flip_mode=alternate: which images epoch 1 mirrors


@dataclass(frozen=True)
class Shard:
    """The part of the data one process feeds in a data-parallel run: rank of world_size.

    Training: each rank takes a contiguous slice of every global batch, so N ranks together
    see exactly the samples of one process with the whole batch. Evaluation: each rank scores
    a contiguous range of the samples, so every sample counts once (no padding duplicates).
    """

    rank: int = 0
    world_size: int = 1

    def bounds(self, count: int) -> tuple[int, int]:
        """[start, stop) of this rank's part of `count` items; parts differ by at most one."""
        base, extra = divmod(count, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    def eval_batch_size(self, batch_size: int) -> int:
        """Per-rank evaluation batch for a global `batch_size` (same memory as training)."""
        return math.ceil(batch_size / self.world_size)


WHOLE = Shard()


class MemoryLoader:
    """Batches of (x float32 normalised, y int64) on the device of `images`.

    Every random draw of batch k of epoch e comes from generators seeded by (seed, e) for the
    order and (seed, e, k) for the augmentation, so epoch(e, start_batch=k) replays batches k..
    of epoch(e) exactly. With a `shard`, training batches are this rank's slice of each global
    batch of `batch_size`, and evaluation covers this rank's range of the samples.
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        recipe: Recipe,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        *,
        train: bool,
        batch_size: int,
        seed: int,
        views: TestTimeViews = "none",
        lighting: tuple[Tensor, Tensor] | None = None,
        shard: Shard = WHOLE,
    ) -> None:
        self.images = images  # uint8 (N, 3, s, s) on the device
        self.targets = targets.to(images.device)
        self.recipe = recipe
        self.mean = torch.tensor(mean, device=images.device)
        self.std = torch.tensor(std, device=images.device)
        self.train = train
        self.batch_size = batch_size
        self.seed = seed
        self.views = views
        self.lighting = lighting
        self.shard = shard
        self.num_samples = len(images)  # in the whole data set, not this rank's share
        self.first_flip: Tensor | None = None
        if train and recipe.flip and recipe.alternate_flip:
            draws = torch.rand(self.num_samples, generator=generator_for(seed, FIRST_FLIP_STREAM))
            self.first_flip = draws < recipe.flip_probability

    def __len__(self) -> int:
        if self.train:  # global batches: every rank takes the same number of steps
            return math.ceil(self.num_samples / self.batch_size)
        start, stop = self.shard.bounds(self.num_samples)
        return math.ceil((stop - start) / self.shard.eval_batch_size(self.batch_size))

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        if not self.train:
            yield from self._eval_batches(start_batch)
            return
        cpu_order = torch.randperm(
            self.num_samples, generator=generator_for(self.seed, PERMUTATION_STREAM, epoch)
        )
        order = cpu_order.to(self.images.device)
        for batch in range(start_batch, len(self)):
            rows = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            indices = order[rows]
            keep = slice(*self.shard.bounds(len(indices)))
            generator = generator_for(self.seed, BATCH_STREAM, epoch, batch)
            flip = None
            if self.first_flip is not None:  # epochs 1, 3, ... as drawn; 2, 4, ... inverted
                flip = self.first_flip[cpu_order[rows]] ^ (epoch % 2 == 0)
            x = self.augment(self.images.index_select(0, indices), generator, keep, flip)
            yield x, self.targets.index_select(0, indices[keep])

    def _eval_batches(self, start_batch: int) -> Iterator[tuple[Tensor, Tensor]]:
        start, stop = self.shard.bounds(self.num_samples)
        size = self.shard.eval_batch_size(self.batch_size)
        for batch in range(start_batch, len(self)):
            first = start + batch * size
            indices = torch.arange(first, min(first + size, stop), device=self.images.device)
            x = self.eval_views(self.images.index_select(0, indices))
            yield x, self.targets.index_select(0, indices)

    def augment(
        self,
        images: Tensor,
        generator: torch.Generator,
        keep: slice = slice(None),
        flip: Tensor | None = None,
    ) -> Tensor:
        """One training batch: the recipe's crop, flip and lighting, then normalise; `flip`
        (one bool per image) replaces the flip draws (data.flip_mode=alternate).

        The random draws are made for the whole global batch and the rows `keep` are kept, so
        a data-parallel rank gets exactly the augmentation one process would give those rows
        (the cost: each rank crops the whole global batch, a small share of a training step).
        """
        recipe = self.recipe
        if flip is None and recipe.flip:
            flip = torch.rand(len(images), generator=generator) < recipe.flip_probability
        x = batched_train_crop(images, recipe, generator, flip)
        shift = None
        if self.lighting is not None:
            shift = bt.lighting_shift(len(x), *self.lighting, generator)[keep]
        return bt.normalise(x[keep], self.mean, self.std, shift)

    def eval_views(self, images: Tensor) -> Tensor:
        """Centre crop of the eval resize; with views, (B, 2 or 10, 3, crop, crop)."""
        recipe, crop = self.recipe, self.recipe.crop_size
        base = bt.resize_square(images, recipe.resize)
        if self.views == "10crop":
            if recipe.ten_crop_padding:
                base = torch.nn.functional.pad(base, (recipe.ten_crop_padding,) * 4)
            return bt.normalise(bt.ten_crops(base, crop), self.mean, self.std)
        x = bt.normalise(bt.center_crop(base, crop), self.mean, self.std)
        if self.views in SHIFTED_VIEWS:
            return translate_flip_views(x)
        return torch.stack([x, x.flip(-1)], dim=1) if self.views == "flip" else x
