"""Subcommands: data list | data info DATASET | data stats DATASET."""

import argparse
import dataclasses
from typing import Any

from classicnets.config import DataConfig, load_config


def add_parsers(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add `data` and its subcommands."""
    data = subparsers.add_parser("data", help="list, inspect and measure data sets")
    commands = data.add_subparsers(dest="data_command", required=True)

    listing = commands.add_parser("list", help="the registered data sets")
    listing.set_defaults(handler=run_list)

    info = commands.add_parser("info", help="where a data set was found, its splits and classes")
    _add_dataset_arguments(info)
    info.set_defaults(handler=run_info)

    stats = commands.add_parser(
        "stats",
        help="exact per-channel mean/std and RGB PCA of the training split (cached)",
    )
    _add_dataset_arguments(stats)
    stats.add_argument("--recompute", action="store_true", help="ignore a cached result")
    stats.set_defaults(handler=run_stats)


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="a data set name (see `classicnets data list`)")
    parser.add_argument("--preset", help="a recipe name in configs/ or a YAML path")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set data.root=../shared/data (repeatable)",
    )


def _data_config(args: argparse.Namespace) -> DataConfig:
    from classicnets.data import DATASETS

    DATASETS.get(args.dataset)  # an unknown name fails here, listing the choices
    config = load_config(args.preset, args.set)
    return dataclasses.replace(config.data, name=args.dataset)


def run_list(args: argparse.Namespace) -> int:
    from classicnets.data import DATASETS

    for name in DATASETS.names():
        doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
        print(f"{name:12s} {doc[0] if doc else ''}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from classicnets.data import build_splits

    cfg = _data_config(args)
    splits = build_splits(cfg)
    info = splits.info
    val = len(splits.val) if splits.val is not None else 0
    print(f"{info.name}: {len(splits.train)} train, {val} val, {len(splits.test)} test images")
    print(
        f"image size: {info.image_size}  classes ({len(info.classes)}): "
        f"{', '.join(info.classes[:10])}{' ...' if len(info.classes) > 10 else ''}"
    )
    print(f"normalise: mean {_rgb(info.mean)}  std {_rgb(info.std)}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from classicnets.data.stats import dataset_stats

    cfg = _data_config(args)
    stats, cached = dataset_stats(cfg, recompute=args.recompute)
    print(f"{stats.name} train split: {stats.images} images, {stats.pixels} pixels (0..1 scale)")
    print(f"mean (R, G, B): {_rgb(stats.mean)}")
    print(f"std  (R, G, B): {_rgb(stats.std)}")
    print(f"PCA eigenvalues: {', '.join(f'{v:.6f}' for v in stats.eigenvalues)}")
    for k, vector in enumerate(stats.eigenvectors):
        print(f"PCA eigenvector {k + 1} (R, G, B): {_rgb(vector)}")
    print(f"cache: {cached if cached is not None else 'not cached'}")
    return 0


def _rgb(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"
