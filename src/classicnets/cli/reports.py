"""Subcommands: report (write a run's report.html/.md), compare (compare runs side by side)."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

from classicnets.errors import UserError
from classicnets.report import write_comparison, write_run_report
from classicnets.run_record import load_run


def add_parsers(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands."""
    report = subparsers.add_parser(
        "report",
        help="(re)write RUN_DIR/report.html and report.md",
        description="Write a run's report: self-contained report.html and report.md "
        "(figures in report_files/). Works on running or interrupted runs too.",
    )
    report.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="a run folder that classicnets train wrote"
    )
    report.add_argument(
        "--counts", action="store_true", help="also print raw counts in confusion-matrix cells"
    )
    report.set_defaults(handler=run_report)

    compare = subparsers.add_parser(
        "compare",
        help="compare runs: comparison.html and comparison.md",
        description="Compare runs side by side against the first one. Never overwrites: if "
        "--out already holds a comparison, the new one is written beside it as "
        "comparison-2.html (-3, ...).",
    )
    compare.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN", help="run folders to compare, in this order"
    )
    compare.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: compare-<timestamp> next to the first run, i.e. runs/)",
    )
    compare.add_argument(
        "--labels", type=_comma_list, default=None, help="one label per run, comma-separated"
    )
    compare.add_argument(
        "--at",
        type=parse_percentages,
        default=[],
        help="val top-1 thresholds in percent, e.g. 80,90: report epochs needed to reach each",
    )
    compare.set_defaults(handler=run_compare)


def run_report(args: argparse.Namespace) -> int:
    path = write_run_report(args.run_dir, confusion_counts=args.counts)
    print(path)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    runs: list[Path] = args.runs
    labels = args.labels or default_labels(runs)
    if len(labels) != len(runs):
        raise UserError(f"--labels has {len(labels)} labels for {len(runs)} runs; give one per run")
    out_dir = args.out or default_out_dir(runs[0])
    path = write_comparison(
        [(label, [run]) for label, run in zip(labels, runs, strict=True)], out_dir, args.at
    )
    print(path)
    return 0


def default_labels(runs: list[Path]) -> list[str]:
    """The shortest labels that tell the runs apart: model names, else model and seed, else
    the run folder names (numbered if a folder is given twice)."""
    loaded = [load_run(run) for run in runs]
    for labels in (
        [run.model_name for run in loaded],
        [
            f"{run.model_name} seed {run.seed() if run.seed() is not None else '?'}"
            for run in loaded
        ],
    ):
        if len(set(labels)) == len(labels):
            return labels
    names: list[str] = []
    for run in loaded:
        names.append(run.run_id if run.run_id not in names else f"{run.run_id}#{len(names) + 1}")
    return names


def default_out_dir(first_run: Path) -> Path:
    """runs/compare-<timestamp> beside the first run; -2, -3 ... if that folder exists."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(first_run).resolve().parent / f"compare-{stamp}"
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def _comma_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"empty label in {text!r}")
    return items


def parse_percentages(text: str) -> list[float]:
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected percentages like 80,90; got {text!r}") from None
    if not values or any(not 0 < v <= 100 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must be in (0, 100]; got {text!r}")
    return values
