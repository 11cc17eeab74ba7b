"""Subcommands: zoo list | zoo evaluate (torchvision's pretrained ImageNet weights in the
registry's models, scored beside their published accuracy)."""

import argparse
from pathlib import Path
from typing import Any


def add_parsers(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add this module's subcommands."""
    zoo = subparsers.add_parser("zoo", help="pretrained ImageNet weights from torchvision")
    commands = zoo.add_subparsers(dest="zoo_command", required=True)

    listing = commands.add_parser("list", help="models with weights and published accuracy")
    listing.set_defaults(handler=run_zoo_list)

    evaluate = commands.add_parser(
        "evaluate", help="score pretrained weights on ImageNet val beside the published numbers"
    )
    evaluate.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="torchvision names (alexnet, vgg16, vgg16_bn, resnet18, googlenet, ...) or all",
    )
    evaluate.add_argument(
        "--model", action="append", default=[], help="same as MODEL (repeatable); all = every one"
    )
    evaluate.add_argument(
        "--data", default="imagenet", choices=["imagenet"], help="the data set to score on"
    )
    evaluate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. data.root=/data/imagenet, train.batch_size=64, train.device=cuda",
    )
    evaluate.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="PATH|MODEL=PATH",
        help="a local .pth file (repeatable: one row per file) for the one model named, or "
        "MODEL=PATH (repeatable, any models); default: torchvision's, from its cache or a "
        "download",
    )
    evaluate.add_argument(
        "--wnids",
        type=Path,
        help="synset_words.txt, LOC_synset_mapping.txt or the devkit's meta.mat: the 1,000 "
        "wnids that number the weights' outputs, for a val folder with a subset of the classes "
        "(default: one found in data.root)",
    )
    evaluate.add_argument(
        "--tta", choices=["none", "10crop"], default="none", help="10crop: AlexNet §4.1"
    )
    evaluate.add_argument(
        "--normalize",
        metavar="MEAN,STD",
        help="replace the weights' normalisation (shows the pitfall, e.g. 0.5,0.5)",
    )
    evaluate.add_argument("--out", type=Path, default=Path("runs/zoo"), help="table folder")
    evaluate.set_defaults(handler=run_zoo_evaluate)


def run_zoo_list(args: argparse.Namespace) -> int:
    from classicnets.zoo.weights import ZOO_TABLE, published_accuracy

    for entry in ZOO_TABLE:
        top1, top5 = published_accuracy(entry)
        print(f"{entry.name:10s} -> {entry.model:12s} top-1 {top1:.3f}  top-5 {top5:.3f}")
    return 0


def run_zoo_evaluate(args: argparse.Namespace) -> int:
    from classicnets.zoo.evaluate import evaluate_zoo, parse_normalize

    normalize = parse_normalize(args.normalize) if args.normalize else None
    table = evaluate_zoo(
        [*args.models, *args.model],
        args.out,
        weights=args.weights,
        overrides=[f"data.name={args.data}", *args.set],
        tta=args.tta,
        normalize=normalize,
        wnids=args.wnids,
    )
    print(table.read_text(), end="")
    print(f"table: {table} (and {table.with_suffix('.json').name})")
    return 0
