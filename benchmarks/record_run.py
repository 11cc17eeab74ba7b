"""Append finished runs to benchmarks/records.csv, one row per run, and keep each run's curve.

    .venv/bin/python benchmarks/record_run.py RUN_FOLDER [RUN_FOLDER ...] [--recipe NAME]

A row is written only for a complete run with a test score that trained on the whole training
split (no val carve, no limit: the final-number protocol of docs/experiments.md; tuning runs
are refused), and never twice for the same run
(same recipe, seed, start time and commit): a second attempt is a one-line error (exit code 2)
and the file is left as it was. The run's per-epoch training curve (epoch, lr, train loss and
top-1, val top-1 where the run had a val split, seconds) goes to
benchmarks/records/<recipe>-seed<seed>-<start>.csv, so records_report.py can redraw every
recorded curve after the run folder is gone.

Columns: recipe (the preset, from `--preset` in the run's command, or --recipe), seed, epochs,
test_top1, test_top5 (percent, with the run's test-time augmentation), pflop (training FLOPs:
FlopCounterMode's forward + backward FLOPs per image times the images trained on; evaluation
not counted), wall_seconds, precision, cpu, date, commit (with "-dirty" if the tree was), and
command. Runs are read with classicnets.report.runs.load_run.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from classicnets.config import config_from_dict, knob_values
from classicnets.errors import UserError
from classicnets.models import build_model
from classicnets.report.runs import RunFolder, load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import training_step_flops

BENCHMARKS = Path(__file__).resolve().parent
RECORDS = BENCHMARKS / "records.csv"
COLUMNS = (
    "recipe",
    "seed",
    "epochs",
    "test_top1",
    "test_top5",
    "pflop",
    "wall_seconds",
    "precision",
    "cpu",
    "date",
    "commit",
    "command",
)
CURVE_COLUMNS = ("epoch", "lr", "train_loss", "train_top1", "val_top1", "epoch_seconds")
PRECISIONS = {"off": "fp32", "bf16": "bf16", "fp16": "fp16"}


def recipe_of(command: Sequence[str]) -> str | None:
    """The preset's name in a `classicnets train --preset X` command line, else None."""
    for flag, value in itertools.pairwise(command):
        if flag == "--preset":
            return Path(value).stem
    for word in command:
        if word.startswith("--preset="):
            return Path(word.partition("=")[2]).stem
    return None


def training_flops_per_image(config: dict[str, Any], summary: dict[str, Any]) -> float:
    """Forward + backward FLOPs of one training image, counted on a freshly built model."""
    model_config = config_from_dict(config).model
    options = knob_values(model_config)
    model = build_model(model_config.name, int(summary["num_classes"]), **options)
    model.train()
    channels, height, width = (int(side) for side in summary["input_size"])
    batch = 2  # BatchNorm needs more than one value per channel in training mode
    x = torch.zeros(batch, channels, height, width)
    y = torch.zeros(batch, dtype=torch.int64)
    return training_step_flops(model, x, y) / batch


def images_trained(epochs: list[dict[str, Any]]) -> int:
    """Images seen in training: each epoch's images/s times its seconds is its image count."""
    return round(sum(row["images_per_second"] * row["epoch_seconds"] for row in epochs))


def precision_of(config: dict[str, Any], env: dict[str, Any]) -> str:
    """bf16, fp16 or fp32; `auto` is resolved by env.json's own entry when it has one, else by
    the rule the loop used when it wrote no entry (bf16 on CUDA, fp32 elsewhere)."""
    if env.get("precision"):
        return str(env["precision"])
    amp = str(config.get("train", {}).get("amp", "off"))
    if amp in PRECISIONS:
        return PRECISIONS[amp]
    return "bf16" if str(env.get("device", "")).startswith("cuda") else "fp32"


def cpu_of(env: dict[str, Any]) -> str:
    """env.json's device name and thread count; on the machine that ran it (same CPU model
    name), also /proc/cpuinfo's model number and its bf16 flags, which env.json lacks."""
    name = str(env.get("device_name") or "unknown")
    threads = env.get("cpu_threads", "?")
    threads_text = f"{threads} thread" + ("" if threads == 1 else "s")
    text = f"{name}, {threads_text}"
    if str(env.get("device", "cpu")) != "cpu":
        return text
    info = _cpuinfo()
    if info.get("model name") == name:
        flags = [f for f in ("avx512_bf16", "amx_bf16") if f in info.get("flags", "").split()]
        detail = f"model {info.get('model', '?')}" + (f", {' '.join(flags)}" if flags else "")
        text = f"{name} ({detail}), {threads_text}"
    return text


def _cpuinfo() -> dict[str, str]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:
            info[key.strip()] = value.strip()
    return info


def record_row(run: RunFolder, recipe: str | None = None) -> dict[str, str]:
    """The records.csv row of one finished run; UserError if the run cannot be recorded."""
    reason = run.incomplete_reason()
    if reason is not None:
        raise UserError(f"{run.path} is not recordable: {reason}")
    summary, env, config = run.summary, run.env, run.config
    if summary.get("test_top1") is None or summary.get("test_top5") is None:
        raise UserError(f"{run.path} has no test score in summary.json; nothing to record")
    if not env or not config or not run.epochs:
        raise UserError(f"{run.path} lacks env.json, config.yaml or metrics.jsonl")
    data = config.get("data", {})
    if data.get("val_fraction") or data.get("limit") or data.get("limit_per_class"):
        raise UserError(
            f"{run.path} trained on part of the training split (a val carve or a limit): a "
            "tuning run; records hold final runs on all training images (docs/experiments.md)"
        )
    command = [str(word) for word in env.get("command", [])]
    name = recipe or recipe_of(command)
    if not name:
        raise UserError(f"{run.path}: its command names no --preset; give --recipe NAME")
    commit = str(env.get("git_commit") or "unknown") + ("-dirty" if env.get("git_dirty") else "")
    pflop = training_flops_per_image(config, summary) * images_trained(run.epochs) / 1e15
    return {
        "recipe": name,
        "seed": str(summary["seed"]),
        "epochs": str(summary["epochs"]),
        "test_top1": f"{float(summary['test_top1']):.2f}",
        "test_top5": f"{float(summary['test_top5']):.2f}",
        "pflop": f"{pflop:.4f}",
        "wall_seconds": f"{float(summary['wall_seconds']):.0f}",
        "precision": precision_of(config, env),
        "cpu": cpu_of(env),
        "date": str(env.get("started", "unknown")),
        "commit": commit,
        "command": shlex.join(command),
    }


def read_records(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise UserError(f"{path} does not have the records columns {','.join(COLUMNS)}")
        return list(reader)


def run_identity(row: dict[str, str]) -> tuple[str, ...]:
    return (row["recipe"], row["seed"], row["date"], row["commit"])


def curve_path(row: dict[str, str], records: Path) -> Path:
    start = "".join(ch for ch in row["date"] if ch.isdigit())
    return records.parent / "records" / f"{row['recipe']}-seed{row['seed']}-{start}.csv"


def append_records(runs: Sequence[RunFolder], records: Path, recipe: str | None = None) -> int:
    """Append one row per run (all or none); returns how many were written."""
    existing = {run_identity(row) for row in read_records(records)}
    rows = []
    for run in runs:
        row = record_row(run, recipe)
        if run_identity(row) in existing:
            raise UserError(
                f"{run.path} is already in {records} (recipe {row['recipe']}, seed "
                f"{row['seed']}, started {row['date']}); nothing written"
            )
        existing.add(run_identity(row))
        rows.append((run, row))
    for run, row in rows:
        _write_curve(run, curve_path(row, records))
    is_new = not records.is_file()
    with records.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS, lineterminator="\n")
        if is_new:
            writer.writeheader()
        writer.writerows(row for _, row in rows)
        file.flush()
        os.fsync(file.fileno())
    return len(rows)


def _write_curve(run: RunFolder, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(CURVE_COLUMNS)
        for row in run.epochs:
            writer.writerow("" if row.get(key) is None else row[key] for key in CURVE_COLUMNS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--recipe", help="the recipe's name, if the command has no --preset")
    parser.add_argument("--records", type=Path, default=RECORDS, help="the CSV to append to")
    args = parser.parse_args(argv)
    try:
        count = append_records([load_run(path) for path in args.runs], args.records, args.recipe)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"recorded {count} run(s) in {args.records}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
