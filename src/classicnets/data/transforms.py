"""Augmentation recipes, resolved to sizes once (`Recipe`), and their torchvision (PIL) form.

Each recipe's training crop, in its PIL form and its batched form (batch_transforms.py, used by
the in-memory loader), is one entry of recipes.py's table; tests/test_data_loaders.py checks
that the two forms of every entry draw the same distribution.

Recipes (sizes are for a 224 crop and scale with data.image_size; 227 keeps the 256 of 224):
- none: resize to the model's side.
- flip: resize to the model's side + horizontal flip (a flip-only recipe).
- crop_flip: random crop with zero padding (CIFAR: 4 px of 32) + horizontal flip, the CIFAR
  recipe of He et al. 2016 (arXiv:1512.03385 §4.2).
- translate_flip: random crop with reflect padding (2 px of 32, a translation of up to 2 px
  that keeps real pixels at the borders) + horizontal flip, as in Jordan 2024
  (arXiv:2404.00498, airbench).
- alexnet: AlexNet §4.1: shorter side to 256, central 256x256, random 224 (or 227) crop + flip;
  optional PCA lighting. Eval: centre crop; 10-crop (4 corners + centre, and their mirror
  images, averaged) is the paper's test protocol.
- vgg: VGG §3.1: isotropic rescale to S in [scale_min, scale_max], random 224 crop + flip.
  Eval at a fixed scale Q (§3.2) with a centre crop (the paper's dense evaluation is not done).
- random_resized_crop: torchvision's RandomResizedCrop (Szegedy et al. 2015 §6, scale 0.08-1,
  aspect 3/4-4/3) + flip, as in the seed recipes (RandomResizedCrop 227).

Test-time views (`train.tta`, `evaluate --tta`): flip (the image and its mirror), 10crop
(AlexNet §4.1), translate_flip (the image, its copies shifted one pixel up-left and down-right
with reflected borders, and the mirrors of all three: six views, as airbench's test-time
augmentation, here averaged with equal weights).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torchvision.transforms.v2 as v2
from PIL import Image
from torch import Tensor

from classicnets.config import DataConfig, TestViews
from classicnets.data.datasets import DATASETS, DatasetInfo, to_rgb
from classicnets.errors import UserError

AugmentName = Literal[
    "none", "flip", "crop_flip", "translate_flip", "alexnet", "vgg", "random_resized_crop"
]
TestTimeViews = TestViews  # one list of view sets, declared with the config that names them
SHIFTED_VIEWS = ("translate_flip", "translate_flip_weighted")  # the same six views each
# translate_flip_weighted (arXiv:2404.00498, its test-time augmentation): the logits of the
# unshifted pair weigh 1/4 each and those of the four shifted views 1/8 each, in the order
# translate_flip_views stacks them; every other view set averages probabilities equally.
VIEW_WEIGHTS = {"translate_flip_weighted": (1 / 4, 1 / 4, 1 / 8, 1 / 8, 1 / 8, 1 / 8)}
TRANSLATE_FRACTION = 1 / 16  # translate_flip: reflect padding as a share of the side (2 of 32)
LIGHTING_ALPHA_STD = 0.1  # AlexNet §4.1: alpha ~ N(0, 0.1)
# RandomResizedCrop's defaults (torchvision), after GoogLeNet (arXiv:1409.4842 §6)
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)


def paper_side(crop_size: int, side_at_224: int) -> int:
    """A side the papers give for 224 crops, scaled to `crop_size` (227 keeps it as is)."""
    if crop_size in (224, 227):
        return side_at_224
    return max(crop_size, round(side_at_224 * crop_size / 224))


@dataclass(frozen=True)
class Recipe:
    """A training recipe with every size resolved for one data set and crop size."""

    augment: AugmentName
    crop_size: int  # the side the model sees
    padding: int  # the training crop's padding on each side (crop_flip, translate_flip)
    padding_mode: str  # how it is filled: "constant" (zeros, crop_flip) or "reflect"
    flip: bool
    flip_probability: float  # of each training image being mirrored, when flip
    alternate_flip: bool  # data.flip_mode=alternate: epoch 1 drawn, each later epoch inverted
    resize: int  # shorter side the eval centre crop (and alexnet's train crop) is taken from
    scale_range: tuple[int, int]  # vgg: training scale S range
    lighting: bool

    @property
    def ten_crop_padding(self) -> int:
        """Zero padding the 10-crop views take their corners from: crop_flip's own, so the
        corners are crops the net trained on (reflected borders are not a zero pad)."""
        return self.padding if self.padding_mode == "constant" else 0

    @property
    def memory_side(self) -> int:
        """Side at which images decoded into memory keep every pixel this recipe uses."""
        return self.scale_range[1] if self.augment == "vgg" else self.resize


def resolve_recipe(cfg: DataConfig, info: DatasetInfo) -> Recipe:
    """The recipe data.augment names (or the data set's usual one for "default")."""
    meta = DATASETS.meta(cfg.name) if cfg.name in DATASETS else {}
    is_default = cfg.augment == "default"
    augment = typing.cast(AugmentName, meta.get("augment", "none") if is_default else cfg.augment)
    crop = info.image_size
    if crop < 1:
        raise UserError(f"data.image_size must be positive; got {crop}")
    if cfg.scale_min > cfg.scale_max or cfg.scale_min < 224:
        raise UserError(
            f"data.scale_min/scale_max must satisfy 224 <= min <= max (sides for a 224 crop); "
            f"got {cfg.scale_min}, {cfg.scale_max}"
        )
    resize = crop
    if augment in ("alexnet", "random_resized_crop"):
        resize = paper_side(crop, 256)
    elif augment == "vgg":
        # VGG §3.2: Q = (S_min + S_max) / 2 for jittered training
        resize = paper_side(crop, cfg.eval_scale or (cfg.scale_min + cfg.scale_max) // 2)
    padding = 0
    if augment == "crop_flip":
        padding = round(crop * meta.get("padding_fraction", 0.125))
    elif augment == "translate_flip":
        padding = max(1, round(crop * TRANSLATE_FRACTION))
    return Recipe(
        augment=augment,
        crop_size=crop,
        padding=padding,
        padding_mode="reflect" if augment == "translate_flip" else "constant",
        flip=bool(meta.get("flip", True)) if is_default else augment != "none",
        flip_probability=cfg.flip_probability,
        alternate_flip=cfg.flip_mode == "alternate",
        resize=resize,
        scale_range=(paper_side(crop, cfg.scale_min), paper_side(crop, cfg.scale_max)),
        lighting=cfg.pca_lighting,
    )


class PCALighting:
    """AlexNet §4.1 colour augmentation on a float (3, H, W) image on the [0, 1] scale.

    Adds sum_k alpha_k * lambda_k * p_k to every pixel, with p_k, lambda_k the eigenvectors and
    eigenvalues of the training set's RGB covariance and alpha_k ~ N(0, 0.1), drawn per image
    (from the global torch RNG, which the loaders seed per sample).
    """

    def __init__(self, eigenvalues: Tensor, eigenvectors: Tensor) -> None:
        self.eigenvalues = eigenvalues.to(torch.float32)  # (3,)
        self.eigenvectors = eigenvectors.to(torch.float32)  # (3, 3): row k is p_k

    def __call__(self, image: Tensor) -> Tensor:
        alpha = torch.randn(3) * LIGHTING_ALPHA_STD
        delta = (alpha * self.eigenvalues) @ self.eigenvectors  # (3,) RGB shift
        return image + delta.view(3, 1, 1)


class ToRGB:
    """Any PIL mode (grey, palette, RGBA, CMYK, 16-bit) to 8-bit RGB."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return to_rgb(image)


class ViewStack:
    """Stack test-time views: "flip" -> (2, C, H, W); "10crop" -> (10, C, H, W);
    "translate_flip" -> (6, C, H, W)."""

    def __init__(self, views: TestTimeViews, crop_size: int, to_tensor: Callable[[Any], Tensor]):
        self.views = views
        self.crop_size = crop_size
        self.to_tensor = to_tensor

    def __call__(self, image: Any) -> Tensor:
        if self.views == "10crop":
            # torchvision order: 4 corners + centre, then the same of the mirrored image
            crops = v2.functional.ten_crop(image, [self.crop_size, self.crop_size])
            return torch.stack([self.to_tensor(crop) for crop in crops])
        x = self.to_tensor(image)
        if self.views in SHIFTED_VIEWS:
            return translate_flip_views(x[None])[0]
        return torch.stack([x, x.flip(-1)])


def translate_flip_views(images: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 6, C, H, W): each image, its copies shifted one pixel up-left and
    down-right (borders reflected), and the mirror images of those three."""
    height, width = images.shape[-2:]
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    shifted = [images, padded[..., :height, :width], padded[..., 2:, 2:]]
    views = [view for x in shifted for view in (x, x.flip(-1))]
    return torch.stack(views, dim=1)


def to_normalised(info: DatasetInfo, lighting: PCALighting | None = None) -> v2.Compose:
    steps: list[Callable[[Any], Any]] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if lighting is not None:
        steps.append(lighting)
    steps += [v2.Normalize(list(info.mean), list(info.std)), v2.ToPureTensor()]
    return v2.Compose(steps)


def eval_transform_for(recipe: Recipe, info: DatasetInfo, views: TestTimeViews) -> v2.Compose:
    """PIL image -> normalised (3, crop, crop), or (V, 3, crop, crop) with test-time views."""
    steps: list[Callable[[Any], Any]] = [ToRGB(), v2.Resize(recipe.resize)]
    if views == "10crop":
        steps.append(v2.CenterCrop(recipe.resize))
        if recipe.ten_crop_padding:
            steps.append(v2.Pad(recipe.ten_crop_padding))  # the corners of the padded image
        steps.append(ViewStack(views, recipe.crop_size, to_normalised(info)))
        return v2.Compose(steps)
    steps.append(v2.CenterCrop(recipe.crop_size))
    steps.append(
        to_normalised(info) if views == "none" else ViewStack(views, 0, to_normalised(info))
    )
    return v2.Compose(steps)


def eval_transform(cfg: DataConfig, info: DatasetInfo) -> Callable[[Image.Image], Tensor]:
    """PIL image (any mode, any size) -> normalised (3, H, W) tensor, as the eval loader does."""
    transform: Callable[[Image.Image], Tensor] = eval_transform_for(
        resolve_recipe(cfg, info), info, "none"
    )
    return transform
