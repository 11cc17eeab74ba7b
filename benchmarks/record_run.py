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
command. Runs are read through classicnets.run_record, the run folder's one reader.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from classicnets.config import RunConfig, config_from_dict, knob_values, read_yaml
from classicnets.errors import UserError
from classicnets.models import build_model
from classicnets.run_record import (
    CONFIG_FILE,
    Environment,
    EpochRecord,
    Summary,
    read_environment,
    read_epochs,
    read_summary,
)

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


@dataclass(frozen=True)
class FinishedRun:
    """What a records row is made of, read from one run folder."""

    path: Path
    config: RunConfig
    environment: Environment
    summary: Summary
    epochs: list[EpochRecord]


def read_run(path: Path) -> FinishedRun:
    """Read a run folder that can be recorded; UserError (one line) if it cannot."""
    notes: list[str] = []
    summary = read_summary(path, notes)
    environment = read_environment(path, notes)
    epochs = read_epochs(path, notes)
    if not (path / CONFIG_FILE).is_file() or summary is None or environment is None:
        raise UserError(f"{path} is not a run folder with config, env and summary files")
    if summary.status != "complete":
        raise UserError(f"{path} is not recordable: its status is {summary.status!r}")
    if summary.test_top1 is None or summary.test_top5 is None or not epochs:
        raise UserError(f"{path} has no test score or no finished epoch; nothing to record")
    config = config_from_dict(read_yaml(path / CONFIG_FILE))
    data = config.data
    if data.val_fraction or data.limit or data.limit_per_class:
        raise UserError(
            f"{path} trained on part of the training split (a val carve or a limit): a "
            "tuning run; records hold final runs on all training images (docs/experiments.md)"
        )
    return FinishedRun(path, config, environment, summary, epochs)


def training_flops_per_image(config: RunConfig, summary: Summary) -> float:
    """Forward + backward FLOPs of one training image, counted on a freshly built model."""
    num_classes = summary.num_classes or len(summary.classes)
    model = build_model(config.model.name, num_classes, **knob_values(config.model))
    model.train()
    channels, height, width = summary.input_size
    batch = 2  # BatchNorm needs more than one value per channel in training mode
    x = torch.zeros(batch, channels, height, width)
    y = torch.zeros(batch, dtype=torch.int64)
    return training_step_flops(model, x, y) / batch


def images_trained(epochs: Sequence[EpochRecord]) -> int:
    """Images seen in training: each epoch's images/s times its seconds is its image count."""
    return round(sum(row.images_per_second * row.epoch_seconds for row in epochs))


def precision_of(config: RunConfig, environment: Environment) -> str:
    """bf16, fp16 or fp32: env.json's own entry, or for runs older than that entry, the rule
    the loop used then for train.amp=auto (bf16 on CUDA, fp32 elsewhere)."""
    if environment.precision:
        return environment.precision
    if config.train.amp in PRECISIONS:
        return PRECISIONS[config.train.amp]
    return "bf16" if environment.device.startswith("cuda") else "fp32"


def cpu_of(environment: Environment) -> str:
    """env.json's device name and thread count; on the machine that ran it (same CPU model
    name), also /proc/cpuinfo's family and model numbers and its bf16 flags, which env.json
    lacks: a model name such as "AMD EPYC" alone does not tell Zen 4 from Zen 5."""
    name = environment.device_name
    threads = environment.cpu_threads
    threads_text = f"{threads} thread" + ("" if threads == 1 else "s")
    if environment.device != "cpu":
        return f"{name}, {threads_text}"
    info = _cpuinfo()
    if info.get("model name") != name:
        return f"{name}, {threads_text}"
    flags = [f for f in ("avx512_bf16", "amx_bf16") if f in info.get("flags", "").split()]
    family = f"family {info['cpu family']} " if "cpu family" in info else ""
    detail = f"{family}model {info.get('model', '?')}" + (f", {' '.join(flags)}" if flags else "")
    return f"{name} ({detail}), {threads_text}"


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


def record_row(run: FinishedRun, recipe: str | None = None) -> dict[str, str]:
    """The records.csv row of one finished run."""
    summary, environment = run.summary, run.environment
    command = list(environment.command)
    name = recipe or recipe_of(command)
    if not name:
        raise UserError(f"{run.path}: its command names no --preset; give --recipe NAME")
    commit = (environment.git_commit or "unknown") + ("-dirty" if environment.git_dirty else "")
    pflop = training_flops_per_image(run.config, summary) * images_trained(run.epochs) / 1e15
    return {
        "recipe": name,
        "seed": str(summary.seed),
        "epochs": str(summary.epochs),
        "test_top1": f"{summary.test_top1:.2f}",
        "test_top5": f"{summary.test_top5:.2f}",
        "pflop": f"{pflop:.4f}",
        "wall_seconds": f"{summary.wall_seconds or 0.0:.0f}",
        "precision": precision_of(run.config, environment),
        "cpu": cpu_of(environment),
        "date": environment.started,
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


def append_records(runs: Sequence[FinishedRun], records: Path, recipe: str | None = None) -> int:
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


def _write_curve(run: FinishedRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(CURVE_COLUMNS)
        for record in run.epochs:
            values = (getattr(record, key) for key in CURVE_COLUMNS)
            writer.writerow("" if value is None else value for value in values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--recipe", help="the recipe's name, if the command has no --preset")
    parser.add_argument("--records", type=Path, default=RECORDS, help="the CSV to append to")
    args = parser.parse_args(argv)
    try:
        count = append_records([read_run(path) for path in args.runs], args.records, args.recipe)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"recorded {count} run(s) in {args.records}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
