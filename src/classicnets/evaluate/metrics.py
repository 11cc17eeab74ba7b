"""Exact classification metrics: top-k counts, the confusion matrix, running means on the device."""

from typing import Any

import torch


def topk_correct(
    logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[torch.Tensor]:
    """Counts (not rates) of samples whose target is among the top-k scores, one per k.

    Counts sum exactly over batches; k larger than the number of classes counts every sample.
    """
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=1).indices  # (N, max_k)
    hits = top.eq(targets.unsqueeze(1))
    return [hits[:, : min(k, max_k)].any(dim=1).sum() for k in ks]


def confusion_matrix(
    predictions: torch.Tensor, targets: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """(num_classes, num_classes) counts; rows are true classes, columns predicted ones.

    A scatter-add rather than torch.bincount, whose CUDA kernel reads the largest value back to
    the host (a sync per evaluation batch).
    """
    flat = targets * num_classes + predictions
    counts = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=flat.device)
    counts.index_add_(0, flat, torch.ones_like(flat, dtype=torch.int64))
    return counts.view(num_classes, num_classes)


class RunningMean:
    """A sum and a count kept on the device; `.value()` syncs, so call it only when logging."""

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0

    def add(self, value_sum: torch.Tensor, count: int) -> None:
        self.total += value_sum.detach().to(torch.float64)
        self.count += count

    def value(self) -> float:
        return float(self.total.item()) / max(self.count, 1)

    def state(self) -> dict[str, Any]:
        return {"total": float(self.total.item()), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        self.total.fill_(state["total"])
        self.count = int(state["count"])
