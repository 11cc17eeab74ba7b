"""Numeric precision and memory layout, chosen once per run for the device it runs on.

`train.amp=auto` picks the fastest precision the hardware runs natively (STYLE §12): bf16 on
CUDA GPUs of compute capability 8.0+ and on CPUs with bf16 instructions, fp16 with a grad
scaler on older GPUs, fp32 elsewhere. `train.amp=off` is fp32 everywhere.
"""

import contextlib
import platform
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from classicnets.config import TrainConfig


@dataclass(frozen=True)
class Precision:
    device: torch.device
    amp_dtype: torch.dtype | None  # None = full fp32
    use_grad_scaler: bool  # fp16 needs loss scaling; bf16 does not
    channels_last: bool

    @property
    def name(self) -> str:
        """ "fp32", "bf16" or "fp16": what env.json and the benchmarks record."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]


def has_native_bf16(device: torch.device) -> bool:
    """bf16 runs natively on ROCm and on CUDA compute capability 8.0+ (Ampere and later).

    torch.cuda.is_bf16_supported() also says yes on older GPUs (T4, V100), where bf16 is
    emulated and slow; fp16 with a grad scaler is the fast choice there.
    """
    return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions that oneDNN's kernels use.

    oneDNN's own check (torch.ops.mkldnn._is_mkldnn_bf16_supported) is the bf16 extension on
    Arm, but on x86 it also says yes for any AVX-512 CPU, where bf16 is emulated and slower
    than fp32; there torch's cpuinfo queries for AVX512_BF16 and AMX tiles (every AMX CPU so
    far has AMX-BF16) decide.
    """
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return True


def auto_amp(device: torch.device) -> str:
    """The `train.amp` value `auto` stands for on this device."""
    if device.type == "cuda":
        return "bf16" if has_native_bf16(device) else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "off"
    return "off"  # MPS and others: fp32, which every PyTorch op supports there


def pick_precision(cfg: TrainConfig, device: torch.device) -> Precision:
    """The autocast dtype (see auto_amp) and channels_last on CUDA and CPU, where it pays off."""
    amp = auto_amp(device) if cfg.amp == "auto" else cfg.amp
    dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if cfg.channels_last == "auto":
        # oneDNN's CPU convolutions are fastest on NHWC tensors too: 1.18-1.20x per training
        # step for vgg16_bn_cifar and alexnet_bn_cifar; our LRN (kernels/lrn.py) runs as fast
        # in either layout (benchmarks/RESULTS.md, Throughput).
        channels_last = device.type in ("cuda", "cpu")
    else:
        channels_last = cfg.channels_last == "yes"
    return Precision(device, dtype, amp == "fp16" and device.type == "cuda", channels_last)


# Below fp32's smallest normal number (1.18e-38): zero where denormals are flushed.
DENORMAL = 1e-39


def flush_denormals(enabled: bool) -> None:
    """Flush denormal floats to zero (x86 FTZ and DAZ, Arm FZ), or stop, on this CPU thread and
    on the threads it starts from now on; GPUs are not affected.

    Denormals (nonzero fp32 values below 1.2e-38) take a slow path through the CPU's
    microcode. The Adam moments of weights whose gradient has stopped sink into that range
    within an epoch or two: from the epoch-6 checkpoint of alexnet_lrn_cifar10_128, 40% of
    its optimizer state was denormal and Adam's step took 0.26 s instead of 0.02 s
    (benchmarks/RESULTS.md, Denormals). Threads of torch's pool that already exist keep
    their setting, so fit() sets it before a run computes anything.
    """
    torch.set_flush_denormal(enabled)


def flushes_denormals() -> bool:
    """Whether this thread computes denormals as zero now."""
    return bool((torch.tensor([DENORMAL], dtype=torch.float32) * 1.0).item() == 0.0)


@contextlib.contextmanager
def denormals_flushed(enabled: bool) -> Iterator[None]:
    """flush_denormals(enabled) for the block, then this thread's mode as it was: a run inside
    a notebook or a test process leaves the calling thread's numerics as it found them
    (hypothesis, for one, refuses to run where denormals are flushed). Threads that torch
    starts inside the block keep the mode of the block."""
    before = flushes_denormals()
    flush_denormals(enabled)
    try:
        yield
    finally:
        flush_denormals(before)
