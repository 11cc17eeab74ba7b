"""Subcommands: train, evaluate, predict."""

import argparse
import logging
import sys
import typing
from pathlib import Path
from typing import Any

import yaml

from classicnets.config import (
    RunConfig,
    TestViews,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    override_keys,
    read_yaml,
)
from classicnets.errors import EXIT_COMPLETE, EXIT_INTERRUPTED, UserError

log = logging.getLogger(__name__)

# What may change when a run is resumed: where and how it runs, and (with a warning) how long.
RESUMABLE_KEYS = {
    "train.epochs",
    "train.device",
    "train.progress",
    "train.log_every_steps",
    "train.checkpoint_every_steps",
    "train.tensorboard",
    "train.keep_optimizer_state",
    "train.dist_backend",
    "data.root",
    "data.num_workers",
}


def _train_epilog() -> str:
    from classicnets.config import preset_names

    return (
        f"presets (configs/): {', '.join(preset_names())}\n"
        "overrides: KEY=VALUE with KEY a config field, e.g. optim.lr=0.01 train.epochs=1 "
        "model.name=vgg16_bn_cifar; sections: model, data, optim, schedule, train "
        "(classicnets train --preset default --print-config lists every field)"
    )


def add_parsers(subparsers: "argparse._SubParsersAction[Any]") -> None:
    train = subparsers.add_parser(
        "train",
        help="train a model (or resume a run)",
        epilog=_train_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, as --set does",
    )
    train.add_argument("--preset", help="a recipe name in configs/ (listed below) or a YAML path")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=0.01 (repeatable)",
    )
    train.add_argument("--out", type=Path, default=Path("runs"), help="parent of the run folder")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue this run folder")
    train.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as YAML and stop: nothing is trained or written",
    )
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="score a checkpoint: top-1/top-5, per class, confusion, predictions"
    )
    evaluate.add_argument(
        "checkpoint",
        type=Path,
        metavar="CHECKPOINT_OR_RUN",
        help="a run folder (its best weights, else last.pt) or a checkpoint .pt file",
    )
    evaluate.add_argument("--data", help="data set name (default: the one it was trained on)")
    evaluate.add_argument(
        "--split", choices=["test", "val", "train"], default="test", help="which split to score"
    )
    evaluate.add_argument(
        "--tta",
        choices=typing.get_args(TestViews),
        default="none",
        help="test-time views; 10crop is AlexNet §4.1's test protocol, translate_flip averages "
        "the image, 1-pixel shifts and their mirrors; translate_flip_weighted weighs their "
        "logits as arXiv:2404.00498 does (the unshifted pair 1/2, each shifted pair 1/4)",
    )
    evaluate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the checkpoint's config, e.g. --set data.root=/data",
    )
    evaluate.add_argument("--out", type=Path, help="write here instead of the run folder")
    evaluate.set_defaults(handler=run_evaluate)

    predict = subparsers.add_parser("predict", help="top-5 classes for image files")
    predict.add_argument(
        "checkpoint",
        type=Path,
        metavar="CHECKPOINT_OR_RUN",
        help="a run folder (its best weights, else last.pt) or a checkpoint .pt file",
    )
    predict.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE", help="image files (any format PIL reads)"
    )
    predict.add_argument("--device", default="cpu", help="ignored: predictions run on the CPU")
    predict.set_defaults(handler=run_predict)


def resume_config(run_dir: Path, overrides: list[str]) -> RunConfig:
    """The run's own config, with only the keys that may change on resume overridden."""
    from classicnets.train.run_folder import load_run_config

    saved = load_run_config(run_dir)
    refused = [key for key in override_keys(overrides) if key not in RESUMABLE_KEYS]
    if refused:
        raise UserError(
            f"--set {refused[0]} cannot change when resuming (it would not be the "
            f"same run); allowed: {', '.join(sorted(RESUMABLE_KEYS))}"
        )
    config = config_from_dict(apply_overrides(config_to_dict(saved), overrides))
    if config.train.epochs != saved.train.epochs:
        log.warning(
            "resume: train.epochs changes from %d to %d; schedules that depend on the "
            "total length (cosine, linear, onecycle) now follow the new length",
            saved.train.epochs,
            config.train.epochs,
        )
    return config


def run_train(args: argparse.Namespace) -> int:
    overrides = [*args.overrides, *args.set]
    if args.resume is not None:
        if args.preset:
            raise UserError("--resume uses the run's own config; drop --preset")
        config = resume_config(args.resume, overrides)
    else:
        config = load_config(args.preset, overrides)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")
        return 0
    return _train_and_report(config, args.out, args.resume)


def _train_and_report(config: RunConfig, out: Path, resume: Path | None) -> int:
    from classicnets.api import run_training
    from classicnets.run_record import Summary, read_summary
    from classicnets.train.distributed import is_main_process

    run_dir = run_training(config, out, resume=resume, command=sys.argv)
    if not is_main_process():  # under torchrun, rank 0 reports for the run
        return 0
    report = run_dir / "report.html"
    summary = read_summary(run_dir, []) or Summary()
    print(f"run folder: {run_dir}")
    if summary.test_top1 is not None:
        print(
            f"test top-1: {summary.test_top1:.2f}%  top-5: {summary.test_top5 or 0.0:.2f}%  "
            f"({summary.epochs} epochs, {summary.wall_seconds or 0.0:.0f} s)"
        )
    else:
        print(
            f"status: {summary.status} after {summary.epochs} epochs "
            f"(resume with: classicnets train --resume {run_dir})"
        )
    print(f"report: {report}")
    return EXIT_INTERRUPTED if summary.status == "interrupted" else EXIT_COMPLETE


def run_evaluate(args: argparse.Namespace) -> int:
    from classicnets.report import write_run_report
    from classicnets.trained import evaluate_trained, load_trained

    overrides = list(args.set) + ([f"data.name={args.data}"] if args.data else [])
    trained = load_trained(args.checkpoint, overrides)
    metrics = evaluate_trained(trained, args.split, args.tta, args.out)
    print(
        f"{args.split} ({args.tta}): top-1 {metrics['top1']:.2f}% "
        f"(error {metrics['error_top1']:.2f}%)"
        f"  top-5 {metrics['top5']:.2f}%  loss {metrics['loss']:.4f}  n={metrics['count']}"
    )
    run_dir = trained.run_dir
    if args.out is None and run_dir is not None and (run_dir / "config.yaml").is_file():
        print(f"report: {write_run_report(run_dir)}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from classicnets.trained import load_trained, predict

    trained = load_trained(args.checkpoint)
    for prediction in predict(trained, list(args.images)):
        print(prediction)
    return 0


__all__ = ["add_parsers", "read_yaml"]
