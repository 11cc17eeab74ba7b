"""Numeric precision and memory layout, chosen once per run for the device it runs on."""

from dataclasses import dataclass

import torch

from classicnets.config import TrainConfig


@dataclass(frozen=True)
class Precision:
    device: torch.device
    amp_dtype: torch.dtype | None  # None = full fp32
    use_grad_scaler: bool  # fp16 needs loss scaling; bf16 does not
    channels_last: bool


def has_native_bf16(device: torch.device) -> bool:
    """bf16 runs natively on ROCm and on CUDA compute capability 8.0+ (Ampere and later).

    torch.cuda.is_bf16_supported() also says yes on older GPUs (T4, V100), where bf16 is
    emulated and slow; fp16 with a grad scaler is the fast choice there.
    """
    return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8


def pick_precision(cfg: TrainConfig, device: torch.device) -> Precision:
    """AMP defaults on for CUDA only; channels_last on CUDA and CPU, where it pays off."""
    amp = cfg.amp
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" and has_native_bf16(device) else "off"
        if device.type == "cuda" and amp == "off":
            amp = "fp16"
    dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if cfg.channels_last == "auto":
        # oneDNN's CPU convolutions are fastest on NHWC tensors too: 1.18-1.20x per training
        # step for vgg16_bn_cifar and alexnet_bn_cifar; our LRN (models/lrn.py) runs as fast
        # in either layout (benchmarks/RESULTS.md, Throughput).
        channels_last = device.type in ("cuda", "cpu")
    else:
        channels_last = cfg.channels_last == "yes"
    return Precision(device, dtype, amp == "fp16" and device.type == "cuda", channels_last)
