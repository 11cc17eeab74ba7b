"""The machine's measured peak GFLOP/s per precision, with the fastest kernels torch has.

For fp32, and for bf16 where the hardware runs it natively, a large matmul and large
convolutions (3x3 and 1x1, channels_last, as oneDNN on CPUs and cuDNN on GPUs run them) are
timed; the peak of a precision is the fastest of its kernels. On the CPU, fp32 matmul goes
through MKL (or OpenBLAS), and a 1x1 convolution is the same product through oneDNN, so the two
lines show both libraries. Efficiency in throughput.py is counted GFLOP/s over this peak.

    .venv/bin/python benchmarks/peak.py [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from classicnets.device import pick_device
from classicnets.kernels.choice import cpu_flags, cpu_model
from classicnets.precision import auto_amp

# Sizes big enough for each library's best blocking, small enough for a second per kernel.
MATMUL_SIDE = 2048
CONV_BATCH, CONV_MAPS, CONV_SIDE = 32, 256, 28


@dataclass(frozen=True)
class KernelRate:
    precision: str  # "fp32" or "bf16"
    kernel: str
    gflops: float


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def rate(run: Callable[[], object], flop: float, device: torch.device, seconds: float) -> float:
    """GFLOP/s of `run`, the best of repeated timings over about `seconds`."""
    run()
    synchronize(device)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        start = time.perf_counter()
        run()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return flop / best / 1e9


def native_precisions(device: torch.device) -> list[str]:
    """fp32, and the reduced precision `train.amp=auto` uses here (if any)."""
    amp = auto_amp(device)
    return ["fp32"] if amp == "off" else ["fp32", amp]


def kernel_rates(
    device: torch.device,
    seconds: float = 1.0,
    precisions: list[str] | None = None,
    shrink: int = 1,
) -> list[KernelRate]:
    """Each kernel's rate in each precision (default: the native ones, native_precisions);
    `shrink` divides the sizes (for smoke tests only: small kernels are far from the peak)."""
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    side, maps = MATMUL_SIDE // shrink, CONV_MAPS // shrink
    rates = []
    for precision in precisions or native_precisions(device):
        dtype = dtypes[precision]
        a = torch.randn(side, side, device=device, dtype=dtype)
        b = torch.randn(side, side, device=device, dtype=dtype)
        library = (
            "cuBLAS" if device.type == "cuda" else ("MKL" if precision == "fp32" else "oneDNN")
        )
        rates.append(
            KernelRate(
                precision,
                f"{library} matmul {side}^3",
                rate(lambda a=a, b=b: a @ b, 2.0 * side**3, device, seconds),
            )
        )
        conv_library = "cuDNN" if device.type == "cuda" else "oneDNN"
        x = torch.randn(CONV_BATCH, maps, CONV_SIDE, CONV_SIDE, device=device, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        for kernel in (3, 1):
            w = torch.randn(maps, maps, kernel, kernel, device=device, dtype=dtype)
            w = w.contiguous(memory_format=torch.channels_last)
            flop = 2.0 * CONV_BATCH * CONV_SIDE**2 * maps**2 * kernel**2
            name = f"{conv_library} conv {kernel}x{kernel} {maps}->{maps} @ {CONV_SIDE}"
            run = lambda x=x, w=w, p=kernel // 2: F.conv2d(x, w, padding=p)  # noqa: E731
            rates.append(KernelRate(precision, name, rate(run, flop, device, seconds)))
    return rates


def peaks(rates: list[KernelRate]) -> dict[str, float]:
    """The fastest kernel's GFLOP/s per precision."""
    best: dict[str, float] = {}
    for r in rates:
        best[r.precision] = max(best.get(r.precision, 0.0), r.gflops)
    return best


def machine_lines(device: torch.device) -> list[str]:
    """CPU model and ISA flags (and the GPU), as every speed number must carry."""
    lines = [f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads"]
    lines.append(f"CPU flags: {cpu_flags()}")
    if device.type == "cuda":
        lines.append(f"GPU: {torch.cuda.get_device_name(device)}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per kernel")
    args = parser.parse_args()
    device = pick_device(args.device)
    print("\n".join(machine_lines(device)))
    rates = kernel_rates(device, args.seconds)
    for r in rates:
        print(f"  {r.precision:5} {r.gflops:9.1f} GFLOP/s  {r.kernel}")
    for precision, value in peaks(rates).items():
        print(f"peak {precision}: {value:.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
