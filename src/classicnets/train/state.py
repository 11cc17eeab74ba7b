"""What a training run carries between steps, epochs and restarts: its progress (TrainState),
an epoch's running sums (EpochSums), the Ctrl-C flag, and what goes into a checkpoint and
summary.json. The loop itself is in train/loop.py."""

import logging
import math
import signal
from dataclasses import asdict, dataclass, field, replace
from types import FrameType
from typing import Any

import torch

from classicnets.errors import UserError
from classicnets.evaluate.metrics import RunningMean, topk_correct
from classicnets.kernels import kernel_trials
from classicnets.run_record import EpochRecord, EvalMetrics, Summary
from classicnets.train.distributed import DistContext, sum_across
from classicnets.train.seeding import rng_state
from classicnets.train.setup import RunParts

log = logging.getLogger(__name__)


class DivergedError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class StopFlag:
    """Set by Ctrl-C (SIGINT): the loop finishes its step, saves last.pt and returns."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "StopFlag":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C is not ours to catch
            self._previous = None
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        log.warning("Ctrl-C: finishing this step and saving checkpoints/last.pt ...")
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class TrainState:
    """Progress that a checkpoint must carry besides the model and optimizer."""

    epochs_done: int = 0
    batches_done: int = 0  # in the epoch after `epochs_done`; > 0 only for mid-epoch saves
    global_step: int = 0
    best_top1: float | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None  # lowest val loss, for early_stop_metric=val_loss
    stale_epochs: int = 0  # epochs since early_stop_metric's best, for early stopping
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: dict[str, Any] = field(default_factory=dict)  # running sums of a half-done epoch

    def book_epoch(self, record: EpochRecord, early_stop_metric: str) -> bool:
        """Count a finished epoch: its history, the best val top-1 and lowest val loss so far,
        and the epochs since early_stop_metric last gained. True if it is the best by val top-1
        (every epoch is, without a val split). Test-set monitoring is not read here."""
        is_best = (
            record.val_top1 is None or self.best_top1 is None or record.val_top1 > self.best_top1
        )
        lower_loss = (
            record.val_loss is None
            or self.best_val_loss is None
            or record.val_loss < self.best_val_loss
        )
        self.epochs_done, self.batches_done, self.partial = record.epoch, 0, {}
        self.history.append(record.to_dict())
        if is_best:
            self.best_top1, self.best_epoch = record.val_top1, record.epoch
        if lower_loss:
            self.best_val_loss = record.val_loss
        gained = lower_loss if early_stop_metric == "val_loss" else is_best
        self.stale_epochs = 0 if gained else self.stale_epochs + 1
        return is_best


@dataclass
class EpochSums:
    """Running sums of one epoch; a mid-epoch checkpoint carries them to the resumed run."""

    lr: float  # at the epoch's first step
    loss: RunningMean
    correct: RunningMean
    seconds: float = 0.0

    @classmethod
    def start(
        cls, lr: float, device: torch.device, partial: dict[str, Any], with_sums: bool = True
    ) -> "EpochSums":
        """Fresh sums, or those of a half-done epoch; `with_sums` False leaves its sums out
        (the saved sums are over all ranks, and only rank 0 carries them on)."""
        sums = cls(lr, RunningMean(device), RunningMean(device))
        if partial:
            sums.lr = float(partial["lr"])
            sums.seconds = float(partial["seconds"])
            if with_sums:
                sums.loss.load(partial["loss"])
                sums.correct.load(partial["correct"])
        return sums

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one step's mean loss and top-1 hits, kept on the device."""
        count = targets.shape[0]
        if count:  # a rank's slice of a short last batch can be empty
            self.loss.add(loss.detach().float() * count, count)
            self.correct.add(topk_correct(logits.detach(), targets, ks=(1,))[0], count)

    def state(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "loss": self.loss.state(),
            "correct": self.correct.state(),
            "seconds": self.seconds,
        }

    def reduced(self, ctx: DistContext, stop: bool = False) -> tuple["EpochSums", bool]:
        """The sums over all ranks (this rank's clock), and whether any rank asked to stop."""
        if not ctx.is_distributed:
            return self, stop
        device = self.loss.total.device
        counts = torch.tensor([self.loss.count, float(stop)], dtype=torch.float64, device=device)
        values = sum_across(
            torch.cat([self.loss.total.view(1), self.correct.total.view(1), counts]), ctx
        )
        loss_total, correct_total, count, stops = values.tolist()
        total = EpochSums(self.lr, RunningMean(device), RunningMean(device), self.seconds)
        total.loss.load({"total": loss_total, "count": int(count)})
        total.correct.load({"total": correct_total, "count": int(count)})
        return total, stops > 0


def check_finite(sums: EpochSums, epoch: int, state: TrainState) -> None:
    value = sums.loss.value()
    if not math.isfinite(value):
        raise DivergedError(
            f"the training loss became {value} in epoch {epoch} (step {state.global_step}); "
            "stopped, keeping the last good checkpoint. Try a lower optim.lr or train.grad_clip"
        )


def checkpoint_dict(
    config: dict[str, Any], parts: RunParts, state: TrainState, weights_only: bool = False
) -> dict[str, Any]:
    """Everything a resume needs; best.pt keeps only the weights and what describes them."""
    info = parts.info
    checkpoint: dict[str, Any] = {
        "model": parts.model.module.state_dict(),
        "config": config,
        "classes": list(info.classes),
        "mean": list(info.mean),
        "std": list(info.std),
        "image_size": info.image_size,
        "epoch": state.epochs_done,
        "best_top1": state.best_top1,
    }
    if not weights_only:
        trials = kernel_trials(parts.model.module)
        checkpoint.update(
            **parts.optimization.state_dict(),
            train_state=asdict(state),
            rng=rng_state(),
            # the fast paths taken so far, pinned again on resume (kernels/choice.py)
            kernel_choices=dict(trials.used) if trials is not None else {},
        )
    return checkpoint


def summary_at(start: Summary, state: TrainState, status: str, test: EvalMetrics | None) -> Summary:
    """summary.json for `state`: `start` (what the run is) with its progress filled in."""
    last = state.history[-1] if state.history else {}
    seconds = state.train_seconds
    images = sum(row["images_per_second"] * row["epoch_seconds"] for row in state.history)
    return replace(
        start,
        status=status,
        epochs=state.epochs_done,
        best_top1=state.best_top1,
        best_epoch=state.best_epoch,
        last_top1=last.get("val_top1"),
        test_top1=test.top1 if test else None,
        test_top5=test.top5 if test else None,
        test_loss=test.loss if test else None,
        wall_seconds=round(state.wall_seconds, 2),
        images_per_second=images / seconds if seconds > 0 else None,
    )
