"""Fast drop-in torch modules, each a subclass of the module it replaces (same arguments,
state_dict and numbers), and the one place the model families take their layers from.

Each one takes its fast path only where that measured faster than torch's own on the machine
that runs (kernels/choice.py), once `use_kernels(model, "auto", device)` has attached the
machine's trials; before that, and with "torch", a model computes with torch's modules.
"""

from typing import Literal

import torch
from torch import nn

from classicnets.kernels.choice import KernelTrials, Timer, time_call
from classicnets.kernels.conv import Conv2d
from classicnets.kernels.dropout import Dropout
from classicnets.kernels.lrn import LocalResponseNorm
from classicnets.kernels.pooling import AdaptiveAvgPool2d

KernelMode = Literal["auto", "torch"]
FAST_LAYERS = (Conv2d, LocalResponseNorm, Dropout, AdaptiveAvgPool2d)

__all__ = [
    "FAST_LAYERS",
    "AdaptiveAvgPool2d",
    "Conv2d",
    "Dropout",
    "KernelMode",
    "KernelTrials",
    "LocalResponseNorm",
    "kernel_trials",
    "use_kernels",
]


def use_kernels(
    model: nn.Module, mode: KernelMode, device: torch.device, timer: Timer = time_call
) -> KernelTrials | None:
    """ "auto": every fast layer of `model` measures its paths on this machine at first use.
    "torch": every fast layer becomes the torch module it subclasses, in place (parameters and
    state_dict untouched); a grouped LRN, which torch lacks, computes with torch's per group."""
    if mode == "torch":
        for layer in model.modules():
            layer.__dict__.pop("kernel_trials", None)
            if isinstance(layer, FAST_LAYERS) and getattr(layer, "groups", 1) == 1:
                layer.__class__ = layer.__class__.__mro__[1]  # e.g. Conv2d -> nn.Conv2d
        return None
    trials = KernelTrials.for_machine(device, timer)
    for layer in model.modules():
        if isinstance(layer, FAST_LAYERS):
            layer.__dict__["kernel_trials"] = trials  # plain state, not a parameter or buffer
    return trials


def kernel_trials(model: nn.Module) -> KernelTrials | None:
    """The trials `use_kernels(model, "auto", ...)` attached (shared by every fast layer)."""
    for layer in model.modules():
        trials = layer.__dict__.get("kernel_trials")
        if isinstance(trials, KernelTrials):
            return trials
    return None
