"""The loader for data sets read from disk: torch.utils.data.DataLoader with worker processes,
pinned memory on CUDA and persistent workers, applying torchvision transforms per image.

Each sample's transform runs under a torch RNG seeded from (seed, epoch, sample index), so the
augmentation does not depend on num_workers and a resumed epoch replays the same batches.
Unreadable images never stop an epoch unless data.strict is set: training drops them from
their batch, evaluation feeds zeros in their place (so predictions keep their row) and both
log a count.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from classicnets.data.datasets import ImageDataset, UnreadableImageError
from classicnets.data.seeds import derive_seed
from classicnets.errors import UserError

log = logging.getLogger(__name__)

PERMUTATION_STREAM = 0
SAMPLE_STREAM = 2

Item = tuple[Tensor | None, int, str | None]  # (image, label, why it could not be read)
Batch = tuple[Tensor | None, Tensor, Tensor, list[str]]


class SeededTransformDataset(Dataset[Item]):
    """Items are keyed by (index, seed): the transform runs under that seed."""

    def __init__(self, dataset: ImageDataset, transform: Callable[[Any], Tensor]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Item:
        index, seed = key
        try:
            image, label = self.dataset[index]
        except UnreadableImageError as error:
            return None, int(self.dataset.targets[index]), str(error)
        # Seed only the CPU generator the transforms draw from, and restore it after:
        # torch.random.fork_rng + manual_seed would cost ~100x more per image.
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.transform(image), label, None
        finally:
            generator.set_state(state)


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields (index, sample seed) in the epoch's order, from a given position on."""

    def __init__(self, size: int, shuffle: bool, seed: int) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(0, self.size - self.start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if not self.shuffle:
            yield from ((index, 0) for index in range(self.start, self.size))
            return
        generator = torch.Generator().manual_seed(
            derive_seed(self.seed, PERMUTATION_STREAM, self.epoch)
        )
        order = torch.randperm(self.size, generator=generator)[self.start :].tolist()
        for index in order:
            yield index, derive_seed(self.seed, SAMPLE_STREAM, self.epoch, index)


def collate_readable(items: Sequence[Item]) -> Batch:
    """Stack the readable images; keep every label, a mask of which were read, and the errors."""
    readable = torch.tensor([x is not None for x, _, _ in items], dtype=torch.bool)
    images = [x for x, _, _ in items if x is not None]
    labels = torch.tensor([y for _, y, _ in items], dtype=torch.int64)
    failures = [why for _, _, why in items if why is not None]
    return (torch.stack(images) if images else None), labels, readable, failures


class StreamLoader:
    """Batches of (x, y) on `device`, transformed per image by DataLoader workers."""

    def __init__(
        self,
        dataset: ImageDataset,
        transform: Callable[[Any], Tensor],
        *,
        train: bool,
        batch_size: int,
        seed: int,
        device: torch.device,
        num_workers: int,
        strict: bool,
    ) -> None:
        self.num_samples = len(dataset)
        self.batch_size = batch_size
        self.train = train
        self.device = device
        self.strict = strict
        self.transform = transform
        self.sampler = EpochSampler(len(dataset), shuffle=train, seed=seed)
        self.pin_memory = device.type == "cuda"
        self.loader = DataLoader(
            SeededTransformDataset(dataset, transform),
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            collate_fn=collate_readable,
            pin_memory=self.pin_memory,
            persistent_workers=num_workers > 0,
            drop_last=False,
        )

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        self.sampler.set_epoch(epoch, min(start_batch * self.batch_size, self.num_samples))
        unreadable: list[str] = []
        for images, labels, readable, failures in self.loader:
            if failures and self.strict:
                raise UserError(f"unreadable image {failures[0]} (data.strict=true)")
            unreadable += failures
            if failures and not self.train:
                images = self._fill_blanks(images, readable)
            elif failures:
                labels = labels[readable]
            if images is None:
                continue
            yield (
                images.to(self.device, non_blocking=self.pin_memory),
                labels.to(self.device, non_blocking=self.pin_memory),
            )
        if unreadable:
            action = "dropped from their batches" if self.train else "scored as blank images"
            log.warning(
                "%d unreadable images %s this epoch (first: %s); data.strict=true stops on them",
                len(unreadable),
                action,
                unreadable[0],
            )

    def _fill_blanks(self, images: Tensor | None, readable: Tensor) -> Tensor:
        """Zeros (the normalised mean image) where images could not be read, so rows stay put."""
        shape = images.shape[1:] if images is not None else self._output_shape()
        dtype = images.dtype if images is not None else torch.float32
        full = torch.zeros(len(readable), *shape, dtype=dtype)
        if images is not None:
            full[readable] = images
        return full

    def _output_shape(self) -> torch.Size:
        with torch.random.fork_rng(devices=[]):
            return self.transform(Image.new("RGB", (64, 64))).shape
