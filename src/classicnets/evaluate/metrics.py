"""Exact classification metrics: top-k counts, running means on the device, epoch records."""

from dataclasses import asdict, dataclass, fields
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


@dataclass(frozen=True)
class EpochRecord:
    """One line of metrics.jsonl / metrics.csv. Accuracies are percentages."""

    epoch: int
    lr: float
    train_loss: float
    train_top1: float
    val_loss: float | None
    val_top1: float | None
    val_top5: float | None
    epoch_seconds: float
    images_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def summary_line(self) -> str:
        val = (
            ""
            if self.val_top1 is None
            else (
                f" | val loss {self.val_loss:.4f} top1 {self.val_top1:.2f}%"
                f" top5 {self.val_top5:.2f}%"
            )
        )
        return (
            f"epoch {self.epoch} | lr {self.lr:.3g} | train loss {self.train_loss:.4f} "
            f"top1 {self.train_top1:.2f}%{val} | {self.epoch_seconds:.1f}s "
            f"{self.images_per_second:.0f} img/s"
        )
