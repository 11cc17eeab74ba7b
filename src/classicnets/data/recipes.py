"""Each augmentation recipe of transforms.py in its two forms, side by side: the torchvision
(PIL) steps the streaming loaders run image by image, and the batched tensor form
(batch_transforms.py) the in-memory loader runs. tests/test_data_loaders.py iterates over this
table and checks that the two forms of each entry draw the same distribution.

Only the crop differs between recipes; the flip, PCA lighting and normalisation that follow are
shared steps of both forms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.v2 as v2
from torch import Tensor

from classicnets.data import batch_transforms as bt
from classicnets.data.datasets import DatasetInfo
from classicnets.data.transforms import (
    RRC_RATIO,
    RRC_SCALE,
    AugmentName,
    PCALighting,
    Recipe,
    ToRGB,
    to_normalised,
)

PilSteps = Callable[[Recipe], list[Callable[[Any], Any]]]
# (uint8 images (B, 3, s, s), recipe, generator, flip or None) -> (B, 3, crop, crop)
BatchedCrop = Callable[[Tensor, Recipe, torch.Generator, Tensor | None], Tensor]


@dataclass(frozen=True)
class Augmentation:
    pil_steps: PilSteps
    batched_crop: BatchedCrop
    crop_flips: bool  # the batched crop mirrors the rows where `flip` itself (one gather)


def _pil_none(recipe: Recipe) -> list[Callable[[Any], Any]]:
    return [v2.Resize(recipe.crop_size), v2.CenterCrop(recipe.crop_size)]


def _batched_none(images: Tensor, recipe: Recipe, generator: torch.Generator, flip: Any) -> Tensor:
    return bt.resize_square(images, recipe.crop_size)  # index_select made a copy: safe to flip


def _pil_crop_flip(recipe: Recipe) -> list[Callable[[Any], Any]]:
    # He et al. 2016 §4.2 (CIFAR): zero-pad 4 pixels per side, random 32x32 crop; translate_flip
    # (arXiv:2404.00498, airbench): reflect-pad 2 pixels, i.e. translate by up to 2 px
    crop = v2.RandomCrop(recipe.crop_size, padding=recipe.padding, padding_mode=recipe.padding_mode)
    return [*_pil_none(recipe), crop]


def _batched_crop_flip(
    images: Tensor, recipe: Recipe, generator: torch.Generator, flip: Tensor | None
) -> Tensor:
    crop, resized = recipe.crop_size, bt.resize_square(images, recipe.crop_size)
    return bt.random_crop(resized, crop, recipe.padding, generator, flip, recipe.padding_mode)


def _pil_alexnet(recipe: Recipe) -> list[Callable[[Any], Any]]:
    # AlexNet §2: shorter side to 256, central 256x256 patch; §4.1: random 224 patches
    side = recipe.resize
    return [v2.Resize(side), v2.CenterCrop(side), v2.RandomCrop(recipe.crop_size)]


def _batched_alexnet(
    images: Tensor, recipe: Recipe, generator: torch.Generator, flip: Tensor | None
) -> Tensor:
    resized = bt.resize_square(images, recipe.resize)
    return bt.random_crop(resized, recipe.crop_size, 0, generator, flip)


def _pil_vgg(recipe: Recipe) -> list[Callable[[Any], Any]]:
    # VGG §3.1: isotropically rescaled to S in [S_min, S_max], then a random 224 crop
    low, high = recipe.scale_range
    return [v2.RandomShortestSize(list(range(low, high + 1))), v2.RandomCrop(recipe.crop_size)]


def _batched_vgg(images: Tensor, recipe: Recipe, generator: torch.Generator, flip: Any) -> Tensor:
    return bt.random_scale_crop(images, recipe.crop_size, recipe.scale_range, generator)


def _pil_random_resized_crop(recipe: Recipe) -> list[Callable[[Any], Any]]:
    # GoogLeNet §6 as torchvision implements it (the seed recipes' RandomResizedCrop)
    return [v2.RandomResizedCrop(recipe.crop_size, scale=RRC_SCALE, ratio=RRC_RATIO)]


def _batched_random_resized_crop(
    images: Tensor, recipe: Recipe, generator: torch.Generator, flip: Any
) -> Tensor:
    return bt.random_resized_crop(images, recipe.crop_size, generator)


AUGMENTATIONS: dict[AugmentName, Augmentation] = {
    "none": Augmentation(_pil_none, _batched_none, crop_flips=False),
    "flip": Augmentation(_pil_none, _batched_none, crop_flips=False),  # the flip alone
    "crop_flip": Augmentation(_pil_crop_flip, _batched_crop_flip, crop_flips=True),
    "translate_flip": Augmentation(_pil_crop_flip, _batched_crop_flip, crop_flips=True),
    "alexnet": Augmentation(_pil_alexnet, _batched_alexnet, crop_flips=True),
    "vgg": Augmentation(_pil_vgg, _batched_vgg, crop_flips=False),
    "random_resized_crop": Augmentation(
        _pil_random_resized_crop, _batched_random_resized_crop, crop_flips=False
    ),
}


def train_transform(
    recipe: Recipe, info: DatasetInfo, lighting: PCALighting | None = None
) -> v2.Compose:
    """PIL image -> augmented, normalised (3, crop, crop) tensor."""
    steps: list[Callable[[Any], Any]] = [ToRGB(), *AUGMENTATIONS[recipe.augment].pil_steps(recipe)]
    if recipe.flip:
        # AlexNet §4.1 "horizontal reflections"
        steps.append(v2.RandomHorizontalFlip(p=recipe.flip_probability))
    steps.append(to_normalised(info, lighting))
    return v2.Compose(steps)


def batched_train_crop(
    images: Tensor, recipe: Recipe, generator: torch.Generator, flip: Tensor | None
) -> Tensor:
    """The recipe's crop of a uint8 batch, mirrored where `flip`: (B, 3, crop, crop)."""
    form = AUGMENTATIONS[recipe.augment]
    x = form.batched_crop(images, recipe, generator, flip)
    if flip is not None and not form.crop_flips:
        x = bt.flip_some(x, flip)
    return x
