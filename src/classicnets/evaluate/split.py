"""Scoring a model on one split of its data set, and writing eval/<split>[-<tta>]/."""

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from classicnets.config import DataConfig, TestViews
from classicnets.data import DataSplits, ImageDataset, build_loader, sample_ids
from classicnets.data.memory_loader import WHOLE, Shard
from classicnets.data.transforms import VIEW_WEIGHTS
from classicnets.errors import UserError
from classicnets.evaluate.loop import EvalResult, evaluate
from classicnets.precision import Precision
from classicnets.run_record import (
    EvalMetrics,
    Samples,
    eval_folder,
    write_eval_metrics,
    write_predictions,
    write_samples,
)

log = logging.getLogger(__name__)


def split_dataset(splits: DataSplits, split: str) -> ImageDataset:
    dataset = {"test": splits.test, "val": splits.val, "train": splits.train}[split]
    if dataset is None:
        raise UserError(f"this data set has no {split} split (set data.val_fraction > 0)")
    return dataset


def evaluate_split(
    model: nn.Module,
    splits: DataSplits,
    split: str,
    tta: TestViews,
    data: DataConfig,
    *,
    batch_size: int,
    seed: int,
    precision: Precision,
    shard: Shard = WHOLE,
) -> EvalResult:
    """Score `model` on one split, keeping predictions and sample images for the report; in a
    data-parallel run, on this rank's `shard` of it (merge the ranks' results in order)."""
    info = splits.info
    loader = build_loader(
        split_dataset(splits, split),
        data,
        info,
        train=False,
        batch_size=batch_size,
        seed=seed,
        device=precision.device,
        tta=tta,
        shard=shard,
    )
    # A bar on a terminal or in Jupyter (tqdm.auto); nothing in logs (disable=None off a tty).
    batches = tqdm(
        loader.epoch(0), total=len(loader), desc=f"evaluate {split}", leave=False, disable=None
    )
    return evaluate(
        model,
        batches,
        precision,
        len(info.classes),
        collect=True,
        mean_std=(info.mean, info.std),
        view_weights=VIEW_WEIGHTS.get(tta),
    )


def write_split_result(
    result: EvalResult, run_dir: Path, splits: DataSplits, split: str, tta: TestViews
) -> EvalMetrics:
    """Write a whole split's result to run_dir/eval/<split>[-<tta>]/ and log its line."""
    folder = eval_folder(run_dir, split, tta)
    classes = splits.info.classes
    metrics = eval_metrics(result, classes, split, tta)
    write_eval_metrics(folder, metrics)
    if result.targets is not None and result.top5_indices is not None:
        ids = sample_ids(split_dataset(splits, split))
        write_predictions(folder, prediction_rows(result, classes, ids))
        if result.sample_images:
            write_samples(folder, sample_grid(result, classes))
    log.info(
        "%s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, tta=%s)",
        split,
        result.top1,
        result.top5,
        result.loss,
        result.count,
        tta,
    )
    return metrics


def eval_metrics(result: EvalResult, classes: Sequence[str], split: str, tta: str) -> EvalMetrics:
    correct = int(result.confusion.diagonal().sum())
    return EvalMetrics(
        split=split,
        tta=tta,
        count=result.count,
        loss=result.loss,
        top1=result.top1,
        top5=result.top5,
        error_top1=100.0 - result.top1,
        error_top5=100.0 - result.top5,
        correct=correct,
        incorrect=result.count - correct,
        classes=list(classes),
        per_class_top1=result.per_class_top1,
        per_class_count=result.per_class_count,
        confusion_matrix=result.confusion.tolist(),
    )


def prediction_rows(
    result: EvalResult, classes: Sequence[str], sample_ids: Sequence[str]
) -> list[list[str]]:
    """predictions.csv's rows: sample id, class names, top-5 names and probabilities."""
    assert result.targets is not None and result.top5_indices is not None
    assert result.top5_probs is not None
    rows = []
    for row, target in enumerate(result.targets.tolist()):
        indices = result.top5_indices[row].tolist()
        probs = result.top5_probs[row].tolist()
        rows.append(
            [
                sample_ids[row] if row < len(sample_ids) else str(row),
                classes[target],
                classes[indices[0]],
                "|".join(classes[i] for i in indices),
                "|".join(f"{p:.4f}" for p in probs),
            ]
        )
    return rows


def sample_grid(result: EvalResult, classes: Sequence[str]) -> Samples:
    """The kept sample images with their targets and top-5 predictions (samples.npz)."""
    assert result.targets is not None and result.top5_indices is not None
    assert result.top5_probs is not None
    rows = result.sample_rows
    return Samples(
        images=np.stack(result.sample_images),
        targets=result.targets[rows].numpy(),
        top5_indices=result.top5_indices[rows].numpy(),
        top5_probs=result.top5_probs[rows].numpy(),
        classes=list(classes),
    )
