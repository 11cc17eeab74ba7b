"""The classification loss; the only place that knows about auxiliary heads (GoogLeNet §5)."""

from typing import Any

import torch
import torch.nn.functional as F

# GoogLeNet §5: "the losses of the auxiliary classifiers were weighted by 0.3".
AUX_LOSS_WEIGHT = 0.3


def main_logits(output: Any) -> torch.Tensor:
    """The logits of a model output that may carry auxiliary heads."""
    return output if isinstance(output, torch.Tensor) else output.logits


def classification_loss(
    output: Any, targets: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy on the main logits, plus 0.3 x each auxiliary head's loss if present."""
    loss = F.cross_entropy(main_logits(output), targets, label_smoothing=label_smoothing)
    if not isinstance(output, torch.Tensor):
        for aux in getattr(output, "aux_logits", ()) or ():
            if aux is not None:
                loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(
                    aux, targets, label_smoothing=label_smoothing
                )
    return loss
