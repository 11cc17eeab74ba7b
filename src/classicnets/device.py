"""Device choice, made once per run: `auto` or a device that must be available here."""

import torch

from classicnets.errors import UserError


def pick_device(name: str) -> torch.device:
    """`auto` picks cuda > mps > cpu; anything else must be available here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(
            f"train.device={name!r} is not a device (use auto, cpu, cuda, mps)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"train.device={name} but CUDA is not available here (use auto or cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"train.device={name} but MPS is not available here (use auto or cpu)")
    return device
