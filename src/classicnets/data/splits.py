"""Seeded, stratified splits: the val split carved from train, and the quick-run subsets.

Splits are seeded by `data.split_seed` (not `train.seed`), so runs that differ only in their
training seed see the same val and test images and their scores stay comparable.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import torch
from torch import Tensor

from classicnets.config import DataConfig
from classicnets.data.datasets import (
    DATASETS,
    DatasetInfo,
    DataSplits,
    ImageDataset,
    with_image_size,
)
from classicnets.errors import UserError

log = logging.getLogger(__name__)


def _class_members(targets: Tensor, generator: torch.Generator) -> list[Tensor]:
    """For each class present, its indices in a seeded random order."""
    members = []
    for label in torch.unique(targets).tolist():
        indices = torch.nonzero(targets == label).flatten()
        members.append(indices[torch.randperm(len(indices), generator=generator)])
    return members


def stratified_holdout(targets: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into (kept, held out) with `fraction` of every class held out."""
    generator = torch.Generator().manual_seed(seed)
    kept, held = [], []
    for indices in _class_members(targets, generator):
        count = round(fraction * len(indices))
        held.append(indices[:count])
        kept.append(indices[count:])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def stratified_limit(targets: Tensor, limit: int, limit_per_class: int, seed: int) -> Tensor:
    """Indices of a class-balanced subset: at most `limit_per_class` per class and `limit` total.

    The total is shared out in proportion to class sizes (largest remainders get the extra).
    """
    generator = torch.Generator().manual_seed(seed)
    members = _class_members(targets, generator)
    counts = [len(m) if limit_per_class <= 0 else min(len(m), limit_per_class) for m in members]
    total = sum(counts)
    if 0 < limit < total:
        shares = [limit * c / total for c in counts]
        quotas = [math.floor(s) for s in shares]
        by_remainder = sorted(range(len(shares)), key=lambda i: quotas[i] - shares[i])
        for i in by_remainder[: limit - sum(quotas)]:
            quotas[i] += 1
        counts = quotas
    chosen = [m[:c] for m, c in zip(members, counts, strict=True)]
    return torch.cat(chosen).sort().values


def build_splits(cfg: DataConfig) -> DataSplits:
    """Read the data set named by cfg.name; carve val from train; apply the limits."""
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise UserError(f"data.val_fraction must be in [0, 1); got {cfg.val_fraction}")
    if cfg.limit < 0 or cfg.limit_per_class < 0:
        raise UserError("data.limit and data.limit_per_class must be >= 0 (0 = no limit)")
    source = DATASETS.get(cfg.name)(cfg)
    train: ImageDataset = source.train
    val: ImageDataset | None = None
    if cfg.val_fraction > 0 and len(train) > 0:
        kept, held = stratified_holdout(train.targets, cfg.val_fraction, cfg.split_seed)
        if len(held) == 0:
            raise UserError(
                f"data.val_fraction={cfg.val_fraction} leaves no val images from "
                f"{len(train)} training images; raise it or set it to 0"
            )
        train, val = train.subset(kept), train.subset(held)
    if cfg.limit or cfg.limit_per_class:
        train = train.subset(
            stratified_limit(train.targets, cfg.limit, cfg.limit_per_class, cfg.split_seed)
        )
    if len(source.test) == 0:
        raise UserError(f"{cfg.name}: the test split at {source.location} has no images")
    log.info(
        "%s: %d train, %s val, %d test images (%s)",
        cfg.name,
        len(train),
        len(val) if val is not None else "no",
        len(source.test),
        source.location,
    )
    info = with_image_size(source.info, cfg.image_size)
    return DataSplits(train, val, source.test, with_normalisation(info, cfg.mean, cfg.std))


def with_normalisation(info: DatasetInfo, mean: list[float], std: list[float]) -> DatasetInfo:
    """`info` normalising with data.mean and data.std where they are set (3 values each)."""
    for key, values in (("data.mean", mean), ("data.std", std)):
        if values and len(values) != 3:
            raise UserError(f"{key} takes 3 values (R, G, B); got {len(values)}")
    return replace(
        info,
        mean=(mean[0], mean[1], mean[2]) if mean else info.mean,
        std=(std[0], std[1], std[2]) if std else info.std,
    )
