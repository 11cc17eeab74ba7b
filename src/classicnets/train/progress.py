"""What a person watching an epoch sees, and the epoch's training seconds.

On a terminal a tqdm bar; without one (nohup, a batch job) tqdm draws nothing, so a text line
every tenth of the epoch instead, so that a log shows progress long before the epoch ends.
Seconds are read after the device's queued work is done, so they are the work's own.
"""

import logging
import time

import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device`, so that a clock read next is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Progress:
    """The progress bar or text lines of one epoch, and its clock."""

    def __init__(
        self,
        epoch: int,
        total: int,
        done: int,
        device: torch.device,
        *,
        enabled: bool,
        is_main: bool,
        logged_loss: tuple[float, int] = (0.0, 0),
    ) -> None:
        self.epoch, self.total, self.device = epoch, total, device
        self.bar = tqdm(
            total=total,
            initial=done,
            desc=f"epoch {epoch}",
            disable=None if enabled and is_main else True,
            leave=False,
            dynamic_ncols=True,
        )
        # Every rank keeps the same text steps: the running sums shown are reduced over ranks.
        self.text_every = max(1, total // 10) if enabled else 0
        self.prints_text = is_main and bool(self.bar.disable)
        self.logged_loss = logged_loss  # the loss sum and count at the last step line
        self.started = self._now()

    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def lap(self) -> float:
        """Seconds since the last lap (or the start, or `restart`)."""
        now = self._now()
        seconds, self.started = now - self.started, now
        return seconds

    def restart(self) -> None:
        """Start the clock again, leaving out the time since the last lap (a checkpoint save)."""
        self.started = self._now()

    def advance(self, done: int) -> bool:
        """Count one step; True when `done` steps is a text-line step."""
        self.bar.update(1)
        return bool(self.text_every) and done % self.text_every == 0

    def set_values(
        self, loss: float, correct: float, lr: float, images: int, seconds: float
    ) -> None:
        """Show the epoch's running loss, top-1, learning rate and images/s on the bar."""
        shown = {  # a dict keeps this order; tqdm sorts keyword arguments
            "loss": f"{loss:.3f}",
            "top1": f"{100 * correct:.1f}",
            "lr": f"{lr:.2g}",
            "img_s": f"{images / max(seconds, 1e-9):.0f}",
        }
        self.bar.set_postfix(shown)

    def show_text(self, done: int, is_text_step: bool) -> None:
        """Without a terminal, log the bar's values as a line at a text step."""
        if is_text_step and self.prints_text and done < self.total:
            log.info(f"epoch {self.epoch} step {done}/{self.total} | {self.bar.postfix}")

    def interval_loss(self, loss_sum: float, count: int) -> float:
        """The mean loss since the previous call, from the epoch's running sum and count."""
        previous_sum, previous_count = self.logged_loss
        self.logged_loss = (loss_sum, count)
        return (loss_sum - previous_sum) / max(count - previous_count, 1)

    def close(self) -> None:
        self.bar.close()
