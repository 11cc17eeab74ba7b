"""The loader for data sets read from disk: torch.utils.data.DataLoader with worker processes,
pinned memory on CUDA and persistent workers, applying torchvision transforms per image.

Each sample's transform runs under a torch RNG seeded from (seed, epoch, sample index), so the
augmentation does not depend on num_workers, nor on how many data-parallel ranks share a batch,
and a resumed epoch replays the same batches.
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
from classicnets.data.memory_loader import WHOLE, Shard
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


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields one list of (index, sample seed) per batch of the epoch, from a given batch on.

    Training batches are consecutive runs of `batch_size` in the epoch's permutation, of which
    this `shard` keeps its slice; evaluation walks the shard's range of indices in order.
    """

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int, shard: Shard) -> None:
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.shard = shard
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def num_batches(self) -> int:
        """Batches in a whole epoch."""
        if self.shuffle:
            return math.ceil(self.size / self.batch_size)
        start, stop = self.shard.bounds(self.size)
        return math.ceil((stop - start) / self.shard.eval_batch_size(self.batch_size))

    def __len__(self) -> int:
        return max(0, self.num_batches() - self.start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if not self.shuffle:
            start, stop = self.shard.bounds(self.size)
            step = self.shard.eval_batch_size(self.batch_size)
            for batch in range(self.start_batch, self.num_batches()):
                first = start + batch * step
                yield [(index, 0) for index in range(first, min(first + step, stop))]
            return
        generator = torch.Generator().manual_seed(
            derive_seed(self.seed, PERMUTATION_STREAM, self.epoch)
        )
        order = torch.randperm(self.size, generator=generator).tolist()
        for batch in range(self.start_batch, self.num_batches()):
            chunk = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            start, stop = self.shard.bounds(len(chunk))
            yield [
                (index, derive_seed(self.seed, SAMPLE_STREAM, self.epoch, index))
                for index in chunk[start:stop]
            ]


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
        shard: Shard = WHOLE,
    ) -> None:
        self.num_samples = len(dataset)  # in the whole data set, not this rank's share
        self.batch_size = batch_size
        self.train = train
        self.device = device
        self.strict = strict
        self.transform = transform
        self.shard = shard
        self.sampler = EpochBatchSampler(len(dataset), batch_size, train, seed, shard)
        self.pin_memory = device.type == "cuda"
        self.loader = DataLoader(
            SeededTransformDataset(dataset, transform),
            batch_sampler=self.sampler,
            num_workers=num_workers,
            collate_fn=collate_readable,
            pin_memory=self.pin_memory,
            persistent_workers=num_workers > 0,
        )

    def __len__(self) -> int:
        return self.sampler.num_batches()

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        self.sampler.set_epoch(epoch, start_batch)
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
                if self.shard.world_size == 1:
                    continue
                # data-parallel ranks must all take every step, even with nothing to feed
                images = torch.zeros(0, *self._output_shape())
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
