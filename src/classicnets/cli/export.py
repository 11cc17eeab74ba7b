"""Subcommand: export (a trained model as ONNX or a torch.export program)."""

import argparse
from pathlib import Path
from typing import Any


def add_parsers(subparsers: "argparse._SubParsersAction[Any]") -> None:
    export = subparsers.add_parser(
        "export", help="write a trained model as ONNX or a torch.export program (.pt2)"
    )
    export.add_argument(
        "checkpoint",
        type=Path,
        metavar="RUN",
        help="a run folder (its best weights, else last.pt) or a checkpoint .pt file",
    )
    export.add_argument(
        "--format",
        choices=["onnx", "torch.export"],
        default="torch.export",
        help="onnx needs the onnx and onnxscript packages",
    )
    export.add_argument(
        "--out", type=Path, help="the file to write (default: RUN/export/model.onnx or .pt2)"
    )
    export.add_argument(
        "--batch-size", type=int, default=2, help="the example batch the model is traced with"
    )
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from classicnets.errors import UserError
    from classicnets.export import export_model
    from classicnets.trained import load_trained

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1; got {args.batch_size}")
    trained = load_trained(args.checkpoint)
    path = export_model(trained, args.format, args.out, args.batch_size)
    side = trained.info.image_size
    print(f"{path} (input: N x 3 x {side} x {side}, normalised with the run's mean and std)")
    return 0
