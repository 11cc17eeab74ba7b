"""Lookahead (Zhang et al. 2019, arXiv:1907.08610) in the form airbench uses (Jordan 2024,
arXiv:2404.00498 §3): slow weights that the trained weights are pulled back to.

Every `every` optimizer steps the slow copy moves towards the trained weights,
`slow += (1 - decay) * (weights - slow)`, and the weights are reset to it. The decay ramps up
over the run as `base ** every * (step / total) ** 3`: close to 0 early (the slow copy just
follows), up to `base ** every` at the end (0.77 for 0.95 and 5: about the last 20 steps). At the
last step the weights become the slow copy. BatchNorm's running statistics are floating-point
state of the model too and are averaged the same way; integer buffers (batch counters) are not.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Lookahead:
    def __init__(self, model: nn.Module, every: int, base_decay: float, total_steps: int) -> None:
        self.every = every
        self.base_decay = base_decay
        self.total_steps = max(total_steps, 1)
        self.slow = {
            name: value.detach().clone()
            for name, value in model.state_dict().items()
            if value.is_floating_point()
        }

    def decay(self, step: int) -> float:
        """The share of the slow copy kept at a sync after `step` optimizer steps."""
        progress = min(step / self.total_steps, 1.0)
        return float(self.base_decay**self.every * progress**3)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        """Call after every optimizer step; `step` counts the steps taken so far (from 1)."""
        last = step >= self.total_steps
        if step % self.every != 0 and not last:
            return
        state = model.state_dict()
        decay = self.decay(step) if step % self.every == 0 else 1.0
        for name, slow in self.slow.items():
            weights = state[name]
            slow.lerp_(weights.to(slow.dtype), 1.0 - decay)
            weights.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": self.slow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state["slow"].items():
            self.slow[name].copy_(value)
