"""Subcommands: ablate (a grid of config changes x seeds, compared with mean ± std)."""

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


def run_ablate(args: argparse.Namespace) -> int:
    from classicnets.experiments.ablate import parse_vary, run_ablation

    base = load_config(args.preset, args.set)
    cells = parse_vary(args.vary)
    out = args.out or Path("runs") / f"ablate-{resolve_preset(args.preset).stem}"
    html = run_ablation(base, cells, args.seeds, out, args.at)
    print(f"ablation folder: {out}")
    print(f"comparison: {html}")
    return 0
