"""Subcommands: ablate (a grid of config changes x seeds, compared with mean ± std) and
experiment (a paper's claim as a declared grid, ending in a claims report)."""

import argparse
from pathlib import Path
from typing import Any

from classicnets.cli.reports import parse_percentages
from classicnets.config import load_config, resolve_preset


def add_parsers(subparsers: "argparse._SubParsersAction[Any]") -> None:
    ablate = subparsers.add_parser(
        "ablate", help="run a grid of config changes over seeds and compare (mean ± std)"
    )
    ablate.add_argument("--preset", required=True, help="the recipe every cell starts from")
    ablate.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="KEY=V1,V2",
        help="one axis of the grid, e.g. model.norm=bn,none (repeatable)",
    )
    ablate.add_argument("--seeds", type=int, default=1, help="runs per cell (seeds s, s+1, ...)")
    ablate.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override for every cell"
    )
    ablate.add_argument(
        "--out", type=Path, help="grid folder (default runs/ablate-<preset>); rerun to resume"
    )
    ablate.add_argument(
        "--at",
        type=parse_percentages,
        default=[],
        help="val top-1 thresholds in percent, e.g. 80,90",
    )
    ablate.set_defaults(handler=run_ablate)

    experiment = subparsers.add_parser(
        "experiment",
        help="run a paper claim as a small grid (quick: CPU minutes; paper: full protocol)",
    )
    experiment.add_argument("name", help="an experiment name, or 'list' to show them all")
    experiment.add_argument(
        "--budget",
        default="quick",
        help="quick (a CIFAR-10 subset), paper (GPU) or cpu (full CIFAR-10 in CPU hours, "
        "decisive verdicts; relu-vs-tanh and lrn only)",
    )
    experiment.add_argument(
        "--seeds", type=int, help="runs per cell (default: the budget's own, seeds s, s+1, ...)"
    )
    experiment.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run"
    )
    experiment.add_argument(
        "--out", type=Path, help="experiment folder (default runs/experiments/NAME-BUDGET)"
    )
    experiment.add_argument(
        "--grid",
        action="append",
        default=[],
        help="run only this grid of the experiment (repeatable; default: all)",
    )
    experiment.set_defaults(handler=run_experiment_command)


def run_ablate(args: argparse.Namespace) -> int:
    from classicnets.experiments.ablate import parse_vary, run_ablation

    base = load_config(args.preset, args.set)
    cells = parse_vary(args.vary)
    out = args.out or Path("runs") / f"ablate-{resolve_preset(args.preset).stem}"
    html = run_ablation(base, cells, args.seeds, out, args.at)
    print(f"ablation folder: {out}")
    print(f"comparison: {html}")
    return 0


def run_experiment_command(args: argparse.Namespace) -> int:
    from classicnets.experiments.catalog import EXPERIMENTS, get_experiment
    from classicnets.experiments.runner import run_experiment

    if args.name == "list":
        for name in EXPERIMENTS.names():
            experiment = get_experiment(name)
            grids = ", ".join(grid.name for grid in experiment.grids)
            print(f"{name:14s} {experiment.title} [grids: {grids}]")
        return 0
    get_experiment(args.name)  # an unknown name fails before anything else
    out = args.out or Path("runs") / "experiments" / f"{args.name}-{args.budget}"
    html = run_experiment(args.name, args.budget, out, args.seeds, args.set, args.grid)
    print(f"experiment folder: {out}")
    print(f"claims: {html}")
    print(f"claims (Markdown): {html.with_suffix('.md')}")
    return 0
