"""The fast loader for data sets that fit in memory, after airbench (Jordan 2024,
arXiv:2404.00498): uint8 images stay resident on the training device, each epoch is a seeded
permutation, and crop/flip/resize/normalise run batched on tensors. No PIL, no workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from classicnets.data import batch_transforms as bt
from classicnets.data.seeds import generator_for
from classicnets.data.transforms import Recipe, TestTimeViews

# Stream tags, so the permutation and the batch draws never share a seed.
PERMUTATION_STREAM = 0
BATCH_STREAM = 1


class MemoryLoader:
    """Batches of (x float32 normalised, y int64) on the device of `images`.

    Every random draw of batch k of epoch e comes from generators seeded by (seed, e) for the
    order and (seed, e, k) for the augmentation, so epoch(e, start_batch=k) replays batches k..
    of epoch(e) exactly.
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
        self.num_samples = len(images)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        if self.train:
            order = torch.randperm(
                self.num_samples, generator=generator_for(self.seed, PERMUTATION_STREAM, epoch)
            ).to(self.images.device)
        else:
            order = torch.arange(self.num_samples, device=self.images.device)
        for batch in range(start_batch, len(self)):
            indices = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            images = self.images.index_select(0, indices)
            if self.train:
                generator = generator_for(self.seed, BATCH_STREAM, epoch, batch)
                x = self.augment(images, generator)
            else:
                x = self.eval_views(images)
            yield x, self.targets.index_select(0, indices)

    def augment(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """One training batch: the recipe's crop, flip and lighting, then normalise."""
        recipe, crop = self.recipe, self.recipe.crop_size
        flip = torch.rand(len(images), generator=generator) < 0.5 if recipe.flip else None
        x: Tensor
        if recipe.augment == "crop_flip":
            x = bt.resize_square(images, crop)
            x = bt.random_crop(x, crop, recipe.padding, generator, flip)
        elif recipe.augment == "alexnet":
            x = bt.random_crop(bt.resize_square(images, recipe.resize), crop, 0, generator, flip)
        else:
            if recipe.augment == "none":
                x = bt.resize_square(images, crop)  # index_select made a copy: safe to flip
            elif recipe.augment == "vgg":
                x = bt.random_scale_crop(images, crop, recipe.scale_range, generator)
            else:
                x = bt.random_resized_crop(images, crop, generator)
            if flip is not None:
                x = bt.flip_some(x, flip)
        shift = None
        if self.lighting is not None:
            shift = bt.lighting_shift(len(x), *self.lighting, generator)
        return bt.normalise(x, self.mean, self.std, shift)

    def eval_views(self, images: Tensor) -> Tensor:
        """Centre crop of the eval resize; with views, (B, 2 or 10, 3, crop, crop)."""
        recipe, crop = self.recipe, self.recipe.crop_size
        base = bt.resize_square(images, recipe.resize)
        if self.views == "10crop":
            if recipe.padding:
                base = torch.nn.functional.pad(base, (recipe.padding,) * 4)
            return bt.normalise(bt.ten_crops(base, crop), self.mean, self.std)
        x = bt.normalise(bt.center_crop(base, crop), self.mean, self.std)
        return torch.stack([x, x.flip(-1)], dim=1) if self.views == "flip" else x
