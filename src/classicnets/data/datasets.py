"""The two dataset types every data set is read into, and the registry of data set builders.

`TensorImageDataset` holds uint8 images in memory (digits, CIFAR, synthetic) so the fast
batched loader can use them as they are; `FileImageDataset` is a list of (path, label) read
from disk (image folders, Imagenette, ImageNet). Both return (PIL image, label) per item so
the torchvision-transform path works on either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeAlias

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from classicnets.config import DataConfig
from classicnets.registry import Registry

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a report need to know about a data set."""

    name: str
    classes: list[str]
    image_size: int  # the side of the square image the model sees
    mean: RGB  # per-channel, on the [0, 1] scale, used to normalise
    std: RGB


class UnreadableImageError(Exception):
    """An image file that cannot be decoded (corrupt, truncated, empty, not an image)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, P, RGBA, CMYK, I;16, ...) to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit PNGs open as I;16 or I; PIL's convert("RGB") would clip them at 255, so scale.
        values = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((values >> 8).clip(0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        image = Image.fromarray(values.clip(0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P":
        image = image.convert("RGBA")  # keeps palette transparency from warning
    return image.convert("RGB")


def load_image(path: str) -> Image.Image:
    """Decode an image file into RGB, or raise UnreadableImageError naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (
        OSError,
        UnidentifiedImageError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ) as error:
        # PIL raises OSError for truncated files, SyntaxError for some broken headers.
        raise UnreadableImageError(path, str(error) or type(error).__name__) from None


class TensorImageDataset(Dataset[tuple[Image.Image, int]]):
    """Images held in memory as uint8 (N, 3, H, W), with labels and one id per image."""

    def __init__(self, images: Tensor, targets: Tensor, ids: Sequence[str]) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 (N, 3, H, W), got {images.dtype} {images.shape}"
            )
        if len(targets) != len(images) or len(ids) != len(images):
            raise ValueError("images, targets and ids must have the same length")
        self.images = images
        self.targets = targets.to(torch.int64)
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        # (3, H, W) -> (H, W, 3) for PIL
        array = self.images[index].permute(1, 2, 0).numpy()
        return Image.fromarray(array, mode="RGB"), int(self.targets[index])

    def subset(self, indices: Tensor) -> TensorImageDataset:
        ids = [self.ids[i] for i in indices.tolist()]
        return TensorImageDataset(self.images[indices], self.targets[indices], ids)


class FileImageDataset(Dataset[tuple[Image.Image, int]]):
    """Images read from disk on demand: a list of (path, label)."""

    def __init__(self, samples: Sequence[tuple[str, int]]) -> None:
        self.samples = list(samples)
        self.targets = torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        return load_image(path), label

    @property
    def ids(self) -> list[str]:
        return [path for path, _ in self.samples]

    def subset(self, indices: Tensor) -> FileImageDataset:
        return FileImageDataset([self.samples[i] for i in indices.tolist()])


ImageDataset: TypeAlias = TensorImageDataset | FileImageDataset


@dataclass
class DataSplits:
    """Train, optional val (carved from train), and the data set's official test split."""

    train: ImageDataset
    val: ImageDataset | None
    test: ImageDataset
    info: DatasetInfo


@dataclass
class SourceSplits:
    """What a registered builder returns: the official splits, before val carving and limits."""

    train: ImageDataset
    test: ImageDataset
    info: DatasetInfo
    location: str  # where the data was found, for messages ("embedded" if none)


DatasetBuilder: TypeAlias = Callable[[DataConfig], SourceSplits]

# Builders take the DataConfig and return the official splits. Metadata per name:
#   augment: the usual training recipe ("default" resolves to it)
#   padding_fraction: crop_flip padding as a share of the image side (CIFAR: 4 px of 32)
#   flip: whether the default recipe mirrors images
#   embedded: True when nothing is read from data.root (no stats cache is written)
DATASETS: Registry[DatasetBuilder] = Registry("data set")


def sample_ids(dataset: ImageDataset) -> list[str]:
    """One id per image ("test/123" or the file path), in the order of an eval loader."""
    return list(dataset.ids)


def with_image_size(info: DatasetInfo, image_size: int) -> DatasetInfo:
    return info if image_size <= 0 else replace(info, image_size=image_size)


def resolve_root(cfg: DataConfig) -> Path:
    """data.root as an absolute path, so messages and sample ids name it unambiguously."""
    return Path(cfg.root).expanduser().resolve()


def folder_has(path: Path, names: Sequence[str]) -> bool:
    return path.is_dir() and all((path / name).exists() for name in names)
