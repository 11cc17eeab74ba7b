"""Adam's step with denormal moments, with and without flushing denormals to zero.

Weights whose gradient has stopped (dead units, weight decay pulling them to zero) leave Adam
moments and weights below 1.2e-38, where x86 CPUs compute through a slow microcode path.
`train.flush_denormals` (on by default) sets the CPU's flush-to-zero mode before a run
starts. This times one fused Adam step over `--elements` fp32 weights, `--denormal-share` of
them (and their moments) denormal, in two fresh processes side by side: one as the CPU starts
(denormals kept) and one that calls `classicnets.precision.flush_denormals(True)` first, as
fit() does.

    .venv/bin/python benchmarks/denormals.py [--elements 25000000] [--denormal-share 0.4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import torch

from classicnets.kernels.choice import cpu_flags, cpu_model
from classicnets.precision import DENORMAL, flush_denormals, flushes_denormals

MODES = ("kept", "flushed")


def adam_step_seconds(elements: int, share: float, steps: int) -> list[float]:
    """Seconds per fused Adam step (weight decay 1e-4) over weights a `share` of which, with
    their gradients and moments, sit in the denormal range."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(elements, generator=generator) * 0.01)
    dead = torch.rand(elements, generator=generator) < share
    optimizer = torch.optim.Adam([weight], lr=1e-3, weight_decay=1e-4, fused=True)
    weight.grad = torch.randn(elements, generator=generator) * 1e-3
    optimizer.step()  # creates the moments
    state = optimizer.state[weight]
    with torch.no_grad():
        for tensor in (weight, state["exp_avg"], state["exp_avg_sq"]):
            tensor.masked_fill_(dead, DENORMAL)
    weight.grad.masked_fill_(dead, 0.0)
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def child(mode: str, elements: int, share: float, steps: int) -> dict[str, object]:
    if mode == "flushed":
        flush_denormals(True)  # first thing, before torch's thread pool exists
    seconds = adam_step_seconds(elements, share, steps)
    return {
        "mode": mode,
        "seconds": statistics.median(seconds),
        "flushes": flushes_denormals(),
        "threads": torch.get_num_threads(),
    }


def measure(mode: str, args: argparse.Namespace) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", mode, "--elements", str(args.elements)]
    command += ["--denormal-share", str(args.denormal_share), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elements", type=int, default=25_000_000)
    parser.add_argument("--denormal-share", type=float, default=0.4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.elements, args.denormal_share, args.steps)))
        return 0
    results = {mode: measure(mode, args) for mode in MODES}
    vector = [flag for flag in cpu_flags().split() if flag.startswith(("avx", "amx", "sse", "fma"))]
    print(f"CPU: {cpu_model()}; vector flags: {' '.join(vector)}")
    print(
        f"fused Adam step over {args.elements:,} fp32 weights, {args.denormal_share:.0%} of "
        f"them denormal, median of {args.steps} steps, "
        f"{results['kept']['threads']} threads, one fresh process each:"
    )
    print("| denormals | s/step | flush-to-zero active |")
    print("|---|---:|---|")
    for mode, result in results.items():
        print(f"| {mode} | {result['seconds']:.4f} | {result['flushes']} |")
    kept, flushed = (float(results[mode]["seconds"]) for mode in MODES)  # type: ignore[arg-type]
    print(f"kept / flushed: {kept / flushed:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
