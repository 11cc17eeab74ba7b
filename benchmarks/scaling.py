"""How classicnets training scales with batch size and with data-set size.

batch  For each batch size, one throughput.py process (modes peak, compute, pipeline):
       images/s of the compute-only step and of the real pipeline, compute efficiency (b / a,
       load-independent) and the process's peak resident memory. Separate processes, so each
       peak memory belongs to one batch size; their absolute images/s come from different
       minutes of a shared machine, so compare the efficiencies first.
size   One process, interleaved rounds, on 1/4, 1/2 and all of the CIFAR-10 training set (the
       real one in /work/shared/data if present, else as many synthetic images): (1) a fixed
       number of --model training steps through train_one_epoch, seconds per image at each
       size; (2) whole epochs of the training loader alone (permutation, gather, crop, flip,
       normalise), the only part whose cost could grow with the data set; (3) with
       --epoch-model, whole training epochs of that (small) model. Epoch time is linear in
       the number of images when seconds per image stay flat across sizes.

  .venv/bin/python benchmarks/scaling.py batch --model vgg16_bn_cifar
  .venv/bin/python benchmarks/scaling.py size --model vgg16_bn_cifar
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput

from classicnets import allocator
from classicnets.config import RunConfig
from classicnets.train.setup import build_run_parts

CIFAR10_TRAIN_IMAGES = 50_000


# --- batch size ------------------------------------------------------------------------------


def batch_sweep(
    model: str,
    batch_sizes: Sequence[int],
    extra: Sequence[str],
    run: Callable[[list[str]], None] | None = None,
) -> list[dict[str, Any]]:
    """One throughput.py process per batch size; one row of results per batch size."""
    script = Path(__file__).resolve().parent / "throughput.py"
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for batch_size in batch_sizes:
            out = Path(folder) / f"batch_{batch_size}.json"
            command = [
                sys.executable,
                str(script),
                "--model",
                model,
                "--batch-size",
                str(batch_size),
                "--modes",
                "peak,compute,pipeline",
                "--json",
                str(out),
                *extra,
            ]
            (run or _run_quietly)(command)
            result = json.loads(out.read_text())
            rows.append(batch_row(batch_size, result))
    return rows


def _run_quietly(command: list[str]) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def batch_row(batch_size: int, result: dict[str, Any]) -> dict[str, Any]:
    medians, ratios = result["medians"], result["ratios"]
    return {
        "batch_size": batch_size,
        "threads": result["machine"]["torch_threads"],
        "peak_gflops": medians["peak_gflops"],
        "compute_images_per_second": medians["compute"],
        "pipeline_images_per_second": medians["pipeline"],
        "compute_efficiency": ratios["compute_efficiency"],
        "pipeline_efficiency": ratios["pipeline_over_compute"],
        "peak_rss_mib": result["memory"]["process_rss_mib"],
    }


def batch_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| batch | threads | peak GFLOP/s | compute img/s | pipeline img/s | compute eff. "
        "| pipeline eff. | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['threads']} | {r['peak_gflops']:.1f} "
            f"| {r['compute_images_per_second']:.1f} | {r['pipeline_images_per_second']:.1f} "
            f"| {r['compute_efficiency']:.2f} | {r['pipeline_efficiency']:.2f} "
            f"| {r['peak_rss_mib']:.0f} |"
        )
    return lines


# --- data-set size ---------------------------------------------------------------------------


def size_config(
    model: str, images: int, batch_size: int, data: str, overrides: Sequence[str]
) -> RunConfig:
    return throughput.pipeline_config(model, batch_size, "auto", data, images, overrides)


def full_epoch_seconds(pipeline: throughput.Pipeline) -> float:
    """One whole epoch through train_one_epoch, from the first batch."""
    pipeline.state.batches_done = 0
    pipeline.epoch += 1
    return pipeline.train_seconds(len(pipeline.parts.data.train_loader))


def loader_epoch_seconds(pipeline: throughput.Pipeline, epoch: int) -> float:
    """One whole epoch of the training loader alone: batches made, not trained on."""
    device = pipeline.parts.precision.device
    throughput.synchronize(device)
    start = time.perf_counter()
    for _ in pipeline.parts.data.train_loader.epoch(epoch):
        pass
    throughput.synchronize(device)
    return time.perf_counter() - start


MEASURED = {
    "steps": "{steps} training steps per round",
    "epochs": "whole training epochs",
    "loader": "whole epochs of the training loader alone",
}


def size_sweep(
    model: str,
    counts: Sequence[int],
    batch_size: int,
    data: str,
    steps: int,
    rounds: int,
    measure: str,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Seconds per image at each training-set size, interleaved over rounds.

    `measure`: "steps" (`steps` training steps), "epochs" (whole training epochs) or
    "loader" (whole epochs of the training loader alone).
    """
    pipelines = {}
    for count in counts:
        config = size_config(model, count, batch_size, data, overrides)
        pipeline = throughput.Pipeline(config, build_run_parts(config, None))
        if measure != "loader":
            pipeline.train_seconds(1)  # warm-up
        pipelines[count] = pipeline
    seconds: dict[int, list[float]] = {count: [] for count in counts}
    for index in range(rounds):
        for count, pipeline in pipelines.items():
            images = pipeline.parts.data.train_loader.num_samples
            if measure == "epochs":
                seconds[count].append(full_epoch_seconds(pipeline) / images)
            elif measure == "loader":
                seconds[count].append(loader_epoch_seconds(pipeline, index) / images)
            else:
                seconds[count].append(pipeline.train_seconds(steps) / (steps * batch_size))
        log(
            f"round {index + 1}/{rounds}: "
            + ", ".join(
                f"{count} images {1e3 * seconds[count][-1]:.3f} ms/image" for count in counts
            )
        )
    largest = max(counts)
    rows = []
    for count in counts:
        # per-round ratio to the largest set, then the median
        relative = [a / b for a, b in zip(seconds[count], seconds[largest], strict=True)]
        per_image = statistics.median(seconds[count])
        images = pipelines[count].parts.data.train_loader.num_samples
        rows.append(
            {
                "images": images,
                "seconds_per_image": per_image,
                "relative_to_largest": statistics.median(relative),
                "epoch_seconds": per_image * images,
                "measured": MEASURED[measure].format(steps=steps),
            }
        )
    return rows


def size_table(model: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        f"{model} ({rows[0]['measured']}):",
        "",
        "| training images | ms per image | relative to all | epoch seconds |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['images']} | {1e3 * r['seconds_per_image']:.3g} "
            f"| {r['relative_to_largest']:.3f} | {r['epoch_seconds']:.3g} |"
        )
    return lines


def cifar_available(root: str) -> bool:
    return (Path(root) / "cifar-10-batches-py" / "data_batch_1").is_file()


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    allocator.configure()  # before the first tensor (classicnets/allocator.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="sweep", required=True)
    batch = sub.add_parser("batch")
    batch.add_argument("--model", required=True)
    batch.add_argument("--batch-sizes", default="32,64,128,256")
    batch.add_argument("--steps", type=int, default=1)
    batch.add_argument("--rounds", type=int, default=2)
    batch.add_argument("--threads", type=int, default=0)
    size = sub.add_parser("size")
    size.add_argument("--model", required=True)
    size.add_argument("--epoch-model", default="", help="small model for whole epochs")
    size.add_argument("--batch-size", type=int, default=128)
    size.add_argument("--fractions", default="0.25,0.5,1")
    size.add_argument("--steps", type=int, default=2)
    size.add_argument("--rounds", type=int, default=2)
    size.add_argument("--epoch-rounds", type=int, default=1)
    size.add_argument("--loader-rounds", type=int, default=3)
    size.add_argument("--threads", type=int, default=0)
    size.add_argument("--set", action="append", default=[], help="override for --epoch-model")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = " ".join([".venv/bin/python", "benchmarks/scaling.py", *(argv or sys.argv[1:])])
    machine = throughput.machine_description(torch.device("cpu"))
    load_before = os.getloadavg()
    started = time.perf_counter()
    if args.sweep == "batch":
        extra = ["--steps", str(args.steps), "--rounds", str(args.rounds)]
        if args.threads:
            extra += ["--threads", str(args.threads)]
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        lines = batch_table(batch_sweep(args.model, sizes, extra))
    else:
        data = "cifar10" if cifar_available(throughput.CIFAR_ROOT) else "synthetic"
        counts = [round(float(f) * CIFAR10_TRAIN_IMAGES) for f in args.fractions.split(",")]
        common = (counts, args.batch_size, data, args.steps)
        lines = [f"data: {data}"]
        rows = size_sweep(args.model, *common, args.rounds, "steps")
        lines += ["", *size_table(args.model, rows)]
        rows = size_sweep(args.model, *common, args.loader_rounds, "loader")
        lines += ["", *size_table("training loader", rows)]
        if args.epoch_model:
            rows = size_sweep(args.epoch_model, *common, args.epoch_rounds, "epochs", args.set)
            lines += ["", *size_table(args.epoch_model, rows)]
    print(f"date {machine['date']}; command: {command}")
    print(
        f"machine: {machine['cpu']} ({machine['cores']} cores), torch {machine['torch']}, "
        f"{torch.get_num_threads()} torch threads; load average before "
        f"{', '.join(f'{v:.1f}' for v in load_before)}, after "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}; {time.perf_counter() - started:.0f} s; "
        f"huge pages THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}, "
        f"malloc: {allocator.malloc_setting()}"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
