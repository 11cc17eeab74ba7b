"""Optimizers and learning-rate schedules built from their typed config sections."""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from classicnets.config import OptimConfig, ScheduleConfig
from classicnets.errors import UserError
from classicnets.models.pretrained import optimizer_groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (optionally Nesterov), Adam or AdamW (decoupled decay, arXiv:1711.05101). Weight
    decay applies to every parameter, as the papers train, unless optim.decay_bias_and_norm
    is false: then biases and norm layers' parameters get none."""
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):  # also in config_ranges: a cheap guard
        raise UserError(f"optim.lr must be positive and finite; got {cfg.lr}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    fused = fused_update_available(trainable)
    groups = [{"params": trainable}]
    if cfg.body_lr_scale != 1.0:  # fine-tuning: the classifier at lr, the body at lr x scale
        groups = optimizer_groups(model, cfg.body_lr_scale, cfg.lr)
    if not cfg.decay_bias_and_norm:
        groups = without_decay_on_bias_and_norm(groups)
    params: Any = groups
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
            fused=fused,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def without_decay_on_bias_and_norm(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group split in two: its matrices and kernels (decayed), and its biases and
    norm-layer scales and shifts, the 0-d and 1-d parameters, with weight_decay 0."""
    split = []
    for group in groups:
        decayed = [p for p in group["params"] if p.ndim > 1]
        exempt = [p for p in group["params"] if p.ndim <= 1]
        split += [{**group, "params": decayed}, {**group, "params": exempt, "weight_decay": 0.0}]
    return [group for group in split if group["params"]]


def fused_update_available(params: Iterable[nn.Parameter]) -> bool | None:
    """True where PyTorch has one fused update kernel for all parameters (floating-point
    parameters on CPU or CUDA): 4x faster than the CPU default, which loops over the
    tensors one by one (52 ms vs 13 ms per alexnet_cifar step, benchmarks/RESULTS.md). None
    (PyTorch's own choice) elsewhere, e.g. on MPS."""
    usable = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    return True if usable else None


@dataclass
class Schedule:
    """A per-step scheduler, or a per-epoch ReduceLROnPlateau on validation top-1."""

    per_step: torch.optim.lr_scheduler.LRScheduler | None
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None

    def state_dict(self) -> dict[str, object]:
        scheduler = self.per_step or self.plateau
        return scheduler.state_dict() if scheduler is not None else {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        scheduler = self.per_step or self.plateau
        if scheduler is not None:
            scheduler.load_state_dict(state)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: ScheduleConfig,
    epochs: int,
    steps_per_epoch: int,
) -> Schedule:
    """Step, multistep, cosine, linear and constant schedules share one per-step multiplier
    with an optional linear warm-up; one-cycle is torch's OneCycleLR (peak = optim.lr)."""
    total_steps = max(epochs * steps_per_epoch, 1)
    if cfg.name == "plateau":
        # AlexNet §5: "divide the learning rate by 10 when the validation error rate stopped
        # improving"; we watch validation top-1 (mode max).
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.gamma, patience=cfg.patience, min_lr=cfg.min_lr
        )
        return Schedule(per_step=None, plateau=plateau)
    if cfg.name == "onecycle":
        check_onecycle_length(cfg, epochs, steps_per_epoch)
        peak = [group["lr"] for group in optimizer.param_groups]
        onecycle = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peak, total_steps=total_steps, pct_start=cfg.pct_start
        )
        return Schedule(per_step=onecycle, plateau=None)
    multiplier = lr_multiplier(cfg, steps_per_epoch, total_steps, optimizer.defaults["lr"])
    return Schedule(torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier), plateau=None)


def check_onecycle_length(cfg: ScheduleConfig, epochs: int, steps_per_epoch: int) -> None:
    """One-cycle rises for pct_start of the steps; with one step or less to rise over, torch's
    OneCycleLR divides by zero (4 steps at pct_start 0.25) or never rises."""
    total_steps = epochs * steps_per_epoch
    if cfg.pct_start * total_steps <= 1:
        needed = math.floor(1 / cfg.pct_start) + 1
        raise UserError(
            f"schedule.name=onecycle with pct_start {cfg.pct_start:g} needs at least {needed} "
            f"optimizer steps; this run has {total_steps} ({epochs} epochs x {steps_per_epoch} "
            "steps): train longer, on more data, or with another schedule.name"
        )


def lr_multiplier(
    cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int, base_lr: float
) -> Callable[[int], float]:
    """The factor applied to optim.lr at a given optimizer step."""
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    floor = cfg.min_lr / base_lr

    def multiplier(step: int) -> float:
        epoch = step / steps_per_epoch
        if step < warmup_steps:
            start = cfg.warmup_start
            return start + (1 - start) * (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        if cfg.name == "step":
            return float(cfg.gamma ** math.floor(epoch / max(cfg.step_epochs, 1)))
        if cfg.name == "multistep":
            return float(cfg.gamma ** sum(epoch >= m for m in cfg.milestones))
        if cfg.name == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if cfg.name == "linear":
            return floor + (1 - floor) * max(1.0 - progress, 0.0)
        return 1.0

    return multiplier


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
