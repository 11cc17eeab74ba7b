"""Subcommands: train, evaluate, predict."""

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from classicnets.config import (
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    override_keys,
    read_yaml,
)
from classicnets.errors import UserError

log = logging.getLogger(__name__)

# What may change when a run is resumed: where and how it runs, and (with a warning) how long.
RESUMABLE_KEYS = {
    "train.epochs",
    "train.device",
    "train.progress",
    "train.log_every_steps",
    "train.checkpoint_every_steps",
    "train.tensorboard",
    "train.dist_backend",
    "data.root",
    "data.num_workers",
}


def add_parsers(subparsers: "argparse._SubParsersAction[Any]") -> None:
    train = subparsers.add_parser("train", help="train a model (or resume a run)")
    train.add_argument("--preset", help="a recipe name in configs/ or a YAML path")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=0.01 (repeatable)",
    )
    train.add_argument("--out", type=Path, default=Path("runs"), help="parent of the run folder")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue this run folder")
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="score a checkpoint: top-1/top-5, per class, confusion, predictions"
    )
    evaluate.add_argument("checkpoint", type=Path, metavar="CHECKPOINT_OR_RUN")
    evaluate.add_argument("--data", help="data set name (default: the one it was trained on)")
    evaluate.add_argument("--split", choices=["test", "val", "train"], default="test")
    evaluate.add_argument(
        "--tta",
        choices=["none", "flip", "10crop"],
        default="none",
        help="test-time views; 10crop is AlexNet §4.1's test protocol",
    )
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    evaluate.add_argument("--out", type=Path, help="write here instead of the run folder")
    evaluate.set_defaults(handler=run_evaluate)

    predict = subparsers.add_parser("predict", help="top-5 classes for image files")
    predict.add_argument("checkpoint", type=Path, metavar="CHECKPOINT_OR_RUN")
    predict.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    predict.add_argument("--device", default="cpu")
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
    from classicnets.report import write_run_report
    from classicnets.train.distributed import is_main_process
    from classicnets.train.loop import fit

    if args.resume is not None:
        if args.preset:
            raise UserError("--resume uses the run's own config; drop --preset")
        config = resume_config(args.resume, args.set)
        run_dir = fit(config, resume=args.resume, command=sys.argv)
    else:
        config = load_config(args.preset, args.set)
        run_dir = fit(config, args.out, command=sys.argv)
    if not is_main_process():  # under torchrun, rank 0 reports for the run
        return 0
    report = write_run_report(run_dir)
    if config.train.tensorboard:
        from classicnets.report.tensorboard import log_final_figures

        log_final_figures(run_dir)
    summary = read_json(run_dir / "summary.json")
    print(f"run folder: {run_dir}")
    if summary.get("test_top1") is not None:
        print(
            f"test top-1: {summary['test_top1']:.2f}%  top-5: {summary['test_top5']:.2f}%  "
            f"({summary['epochs']} epochs, {summary['wall_seconds']:.0f} s)"
        )
    else:
        print(
            f"status: {summary['status']} after {summary['epochs']} epochs "
            f"(resume with: classicnets train --resume {run_dir})"
        )
    print(f"report: {report}")
    return 0


def read_json(path: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(path.read_text()))


def checkpoint_config(checkpoint: dict[str, Any], overrides: list[str]) -> RunConfig:
    return config_from_dict(apply_overrides(dict(checkpoint["config"]), overrides))


def run_evaluate(args: argparse.Namespace) -> int:
    from classicnets.data import build_splits
    from classicnets.device import pick_device
    from classicnets.precision import pick_precision
    from classicnets.report import write_run_report
    from classicnets.train.checkpoint import find_checkpoint, load_checkpoint
    from classicnets.train.setup import build_model_for, evaluate_split, load_state_strict

    path = find_checkpoint(args.checkpoint)
    checkpoint = load_checkpoint(path)
    overrides = list(args.set) + ([f"data.name={args.data}"] if args.data else [])
    config = checkpoint_config(checkpoint, overrides)
    precision = pick_precision(config.train, pick_device(config.train.device))
    splits = build_splits(config.data)
    classes = list(checkpoint["classes"])
    if classes != list(splits.info.classes):
        raise UserError(
            f"{path} was trained on {len(classes)} classes, but {config.data.name} "
            f"has {len(splits.info.classes)} ({', '.join(splits.info.classes[:5])}…)"
        )
    model = build_model_for(config.model, len(classes), splits.info.image_size)
    load_state_strict(model, checkpoint["model"], str(path))
    model.to(precision.device)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    out_root = args.out or run_dir or path.parent
    metrics = evaluate_split(config, model, splits, args.split, args.tta, precision, out_root)
    print(
        f"{args.split} ({args.tta}): top-1 {metrics['top1']:.2f}% "
        f"(error {metrics['error_top1']:.2f}%)"
        f"  top-5 {metrics['top5']:.2f}%  loss {metrics['loss']:.4f}  n={metrics['count']}"
    )
    if args.out is None and run_dir is not None and (run_dir / "config.yaml").is_file():
        print(f"report: {write_run_report(run_dir)}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from classicnets.data import DatasetInfo, eval_transform
    from classicnets.data.datasets import UnreadableImageError, load_image
    from classicnets.train.checkpoint import find_checkpoint, load_checkpoint
    from classicnets.train.setup import build_model_for, load_state_strict

    path = find_checkpoint(args.checkpoint)
    checkpoint = load_checkpoint(path)
    config = checkpoint_config(checkpoint, [])
    info = DatasetInfo(
        name=config.data.name,
        classes=list(checkpoint["classes"]),
        image_size=int(checkpoint["image_size"]),
        mean=tuple(checkpoint["mean"]),
        std=tuple(checkpoint["std"]),
    )
    model = build_model_for(config.model, len(info.classes), info.image_size)
    load_state_strict(model, checkpoint["model"], str(path))
    model.eval()
    transform = eval_transform(config.data, info)
    for image_path in args.images:
        try:
            x = transform(load_image(str(image_path))).unsqueeze(0)
        except UnreadableImageError as error:
            raise UserError(f"cannot read image {error}") from None
        with torch.no_grad():
            probs = model(x).softmax(dim=1)[0]
        top = probs.topk(min(5, len(info.classes)))
        ranked = ", ".join(
            f"{info.classes[i]} {p:.3f}"
            for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        )
        print(f"{image_path}: {ranked}")
    return 0


__all__ = ["add_parsers", "read_yaml"]
