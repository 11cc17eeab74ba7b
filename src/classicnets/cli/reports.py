"""Subcommands: report (write a run's report.html/.md), compare (compare runs side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from classicnets.errors import UserError


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
    from classicnets.report import write_run_report

    path = write_run_report(args.run_dir, confusion_counts=args.counts)
    print(path)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from classicnets.api import default_compare_folder, default_labels
    from classicnets.report import write_comparison

    runs: list[Path] = args.runs
    labels = args.labels or default_labels(runs)
    if len(labels) != len(runs):
        raise UserError(f"--labels has {len(labels)} labels for {len(runs)} runs; give one per run")
    out_dir = args.out or default_compare_folder(runs[0])
    path = write_comparison(
        [(label, [run]) for label, run in zip(labels, runs, strict=True)], out_dir, args.at
    )
    print(path)
    return 0


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
