"""evaluate(): loss, top-1/top-5, per-class accuracy and the confusion matrix over a loader.

Batches with test-time views, shaped (N, V, C, H, W) (flips, or AlexNet §4.1's ten crops),
are scored by averaging the softmax over the V views, as the paper averages its ten patches;
given `view_weights` (one per view, summing to 1), by the weighted mean of the views' logits
instead, as arXiv:2404.00498 scores its six translated and mirrored views.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from classicnets.evaluate.metrics import confusion_matrix, topk_correct
from classicnets.precision import Precision

SAMPLE_IMAGES = 64  # images kept for the report's picture grid


@dataclass
class EvalResult:
    count: int
    loss: float
    top1: float  # percent
    top5: float  # percent
    confusion: torch.Tensor  # (C, C) counts, rows = true class
    top5_indices: torch.Tensor | None = None  # (count, 5), when predictions were collected
    top5_probs: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    sample_images: list[np.ndarray] = field(default_factory=list)  # uint8 (H, W, 3)
    sample_rows: list[int] = field(default_factory=list)  # index into targets per image
    # exact sums, so results over parts of the data (data-parallel ranks) merge exactly
    loss_sum: float = 0.0
    top1_correct: int = 0
    top5_correct: int = 0

    @property
    def per_class_count(self) -> list[int]:
        return [int(v) for v in self.confusion.sum(dim=1)]

    @property
    def per_class_top1(self) -> list[float]:
        correct = self.confusion.diagonal().double()
        totals = self.confusion.sum(dim=1).double().clamp(min=1)
        return [float(v) for v in (100.0 * correct / totals)]


def _forward_views(
    model: nn.Module,
    x: torch.Tensor,
    channels_last: bool,
    view_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean log-probabilities over test-time views, and the scores used for ranking."""
    if x.ndim == 5:
        batch, views = x.shape[:2]
        views_batch = x.flatten(0, 1)
        if channels_last:
            views_batch = views_batch.contiguous(memory_format=torch.channels_last)
        logits = model(views_batch).float().view(batch, views, -1)  # (N, V, K)
        if view_weights is not None:
            if len(view_weights) != views:
                raise ValueError(f"{len(view_weights)} view weights for {views} views")
            mixed = (logits * view_weights[:, None]).sum(dim=1)  # fp32: einsum would autocast
            return mixed.log_softmax(dim=1), mixed
        probs = logits.softmax(dim=2).mean(dim=1)
        return probs.clamp_min(1e-12).log(), probs
    logits = model(x).float()
    return logits.log_softmax(dim=1), logits


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    precision: Precision,
    num_classes: int,
    collect: bool = False,
    mean_std: tuple[Sequence[float], Sequence[float]] | None = None,
    view_weights: Sequence[float] | None = None,
) -> EvalResult:
    """Score `model` on every batch. With `collect`, keep top-5 predictions per sample and a
    few de-normalised images (needs `mean_std`) for reports. `view_weights`: see the module
    docstring."""
    was_training = model.training
    model.eval()
    device = precision.device
    weights = None if view_weights is None else torch.tensor(view_weights, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top1 = torch.zeros((), dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    count = 0
    kept_indices, kept_probs, kept_targets = [], [], []
    images: list[tuple[bool, int, np.ndarray]] = []
    for x, y in batches:
        if precision.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device.type,
            dtype=precision.amp_dtype or torch.float32,
            enabled=precision.amp_dtype is not None,
        ):
            log_probs, scores = _forward_views(model, x, precision.channels_last, weights)
        loss_sum += F.nll_loss(log_probs, y, reduction="sum").double()
        hit1, hit5 = topk_correct(scores, y, ks=(1, 5))
        top1 += hit1
        top5 += hit5
        confusion += confusion_matrix(scores.argmax(dim=1), y, num_classes)
        if collect:
            probs = log_probs.exp()
            k = min(5, num_classes)
            top_probs, top_indices = probs.topk(k, dim=1)
            kept_indices.append(top_indices.cpu())
            kept_probs.append(top_probs.cpu())
            kept_targets.append(y.cpu())
            if mean_std is not None:
                _keep_sample_images(images, x, y, top_indices[:, 0], count, mean_std)
        count += y.shape[0]
    model.train(was_training)
    result = EvalResult(
        count=count,
        loss=float(loss_sum.item()) / max(count, 1),
        top1=100.0 * float(top1.item()) / max(count, 1),
        top5=100.0 * float(top5.item()) / max(count, 1),
        confusion=confusion.cpu(),
        loss_sum=float(loss_sum.item()),
        top1_correct=int(top1.item()),
        top5_correct=int(top5.item()),
    )
    if collect and kept_targets:
        result.top5_indices = torch.cat(kept_indices)
        result.top5_probs = torch.cat(kept_probs)
        result.targets = torch.cat(kept_targets)
        images.sort(key=lambda item: (item[0], item[1]))  # misclassified first, then in order
        result.sample_rows = [row for _, row, _ in images[:SAMPLE_IMAGES]]
        result.sample_images = [image for _, _, image in images[:SAMPLE_IMAGES]]
    return result


def merge_results(parts: Sequence[EvalResult]) -> EvalResult:
    """One result from results over consecutive ranges of the samples, in order (the ranks of
    a data-parallel evaluation): sums add up, predictions and sample images concatenate."""
    count = sum(part.count for part in parts)
    loss_sum = sum(part.loss_sum for part in parts)
    top1_correct = sum(part.top1_correct for part in parts)
    top5_correct = sum(part.top5_correct for part in parts)
    merged = EvalResult(
        count=count,
        loss=loss_sum / max(count, 1),
        top1=100.0 * top1_correct / max(count, 1),
        top5=100.0 * top5_correct / max(count, 1),
        confusion=torch.stack([part.confusion for part in parts]).sum(dim=0),
        loss_sum=loss_sum,
        top1_correct=top1_correct,
        top5_correct=top5_correct,
    )
    collected = [
        (part.targets, part.top5_indices, part.top5_probs, part)
        for part in parts
        if part.targets is not None
        and part.top5_indices is not None
        and part.top5_probs is not None
    ]
    if not collected:
        return merged
    targets = merged.targets = torch.cat([item[0] for item in collected])
    top5_indices = merged.top5_indices = torch.cat([item[1] for item in collected])
    merged.top5_probs = torch.cat([item[2] for item in collected])
    predicted = top5_indices[:, 0]
    images: list[tuple[bool, int, np.ndarray]] = []
    offset = 0
    for *_, part in collected:
        for row, image in zip(part.sample_rows, part.sample_images, strict=True):
            is_right = bool(predicted[offset + row] == targets[offset + row])
            images.append((is_right, offset + row, image))
        offset += part.count
    images.sort(key=lambda item: (item[0], item[1]))  # misclassified first, then in order
    merged.sample_rows = [row for _, row, _ in images[:SAMPLE_IMAGES]]
    merged.sample_images = [image for _, _, image in images[:SAMPLE_IMAGES]]
    return merged


def _keep_sample_images(
    images: list[tuple[bool, int, np.ndarray]],
    x: torch.Tensor,
    y: torch.Tensor,
    predicted: torch.Tensor,
    offset: int,
    mean_std: tuple[Sequence[float], Sequence[float]],
) -> None:
    """Keep up to SAMPLE_IMAGES wrong and SAMPLE_IMAGES right images, de-normalised to uint8."""
    wrong = int(sum(1 for is_right, _, _ in images if not is_right))
    right = len(images) - wrong
    if wrong >= SAMPLE_IMAGES and right >= SAMPLE_IMAGES:
        return
    views = x[:, 0] if x.ndim == 5 else x  # the first view is the centre crop
    mean = torch.tensor(mean_std[0], device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(mean_std[1], device=x.device).view(1, -1, 1, 1)
    pixels = (views.float() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    pixels_np = pixels.permute(0, 2, 3, 1).cpu().numpy()
    is_right = (predicted == y).cpu().tolist()
    for i, correct in enumerate(is_right):
        if (correct and right < SAMPLE_IMAGES) or (not correct and wrong < SAMPLE_IMAGES):
            images.append((bool(correct), offset + i, pixels_np[i]))
            right, wrong = (right + 1, wrong) if correct else (right, wrong + 1)
