"""Hand-written run folders in the format of the training engine (docs: run folder format),
shared by the report tests and the browser test; plus a check that they read back cleanly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from classicnets.run_record import load_run

CLASSES = ("cat", "dog", "ship")


def make_run_folder(
    root: Path,
    name: str,
    *,
    classes: tuple[str, ...] = CLASSES,
    val_top1: tuple[float | None, ...] = (50.0, 70.0, 80.0, 85.0),
    confusion: list[list[int]] | None = None,
    status: str = "complete",
    seed: int = 0,
    model: str = "alexnet_cifar",
    with_eval: bool = True,
    with_checkpoint: bool = True,
    truncated_last_line: bool = False,
    kernel: int = 5,
    with_model_table: bool = True,
) -> Path:
    """Write a small run folder: len(classes) classes, one epoch per val_top1 entry."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    epochs = len(val_top1)
    config = {
        "model": {"name": model, "norm": None, "dropout": 0.5, "column_devices": [], "weights": ""},
        "data": {"name": "synthetic", "num_classes": len(classes)},
        "optim": {"name": "sgd", "lr": 0.1},
        "schedule": {"name": "step"},
        "train": {"epochs": epochs, "seed": seed},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "command": ["classicnets", "train", "--set", "train.seed=0"],
        "git_commit": "abc123",
        "git_dirty": False,
        "python": "3.11.2",
        "torch": torch.__version__,
        "torchvision": "0.29.1",
        "device": "cpu",
        "device_name": "cpu",
        "hostname": "test",
        "started": "2025-01-01T12:00:00",
    }
    (run / "env.json").write_text(json.dumps(env))
    records = []
    for epoch, val in enumerate(val_top1, start=1):
        records.append(
            {
                "epoch": epoch,
                "lr": 0.1 * 0.5 ** (epoch - 1),
                "train_loss": 2.0 / epoch,
                "train_top1": 40.0 + 10 * epoch,
                "val_loss": None if val is None else 2.2 / epoch,
                "val_top1": val,
                "val_top5": None if val is None else 100.0,
                "epoch_seconds": 10.0,
                "images_per_second": 500.0 + epoch,
            }
        )
    lines = [json.dumps(r) for r in records]
    text = "\n".join(lines) + "\n"
    if truncated_last_line:
        text += lines[-1][: len(lines[-1]) // 2]  # a killed writer leaves half a line
    (run / "metrics.jsonl").write_text(text)
    steps_per_epoch = 10
    total = steps_per_epoch * epochs
    steps = [  # a one-cycle lr: up for the first quarter of the steps, then down to near 0
        {
            "step": step,
            "epoch": (step - 1) // steps_per_epoch + 1,
            "lr": 0.1 * min(step / (total / 4), (total - step + 0.01) / (total * 3 / 4)),
            "train_loss": 2.0 / (1 + step / steps_per_epoch),
        }
        for step in range(2, total + 1, 2)
    ]
    (run / "steps.jsonl").write_text("".join(json.dumps(row) + "\n" for row in steps))
    with (run / "metrics.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    matrix = np.asarray(confusion if confusion is not None else _diagonal_heavy(len(classes)))
    per_class_count = matrix.sum(axis=1)
    per_class_top1 = 100.0 * np.diag(matrix) / per_class_count
    correct = int(np.trace(matrix))
    count = int(matrix.sum())
    top1 = 100.0 * correct / count
    summary = {
        "status": status,
        "model": model,
        "dataset": "synthetic",
        "num_classes": len(classes),
        "classes": list(classes),
        "params": 1234,
        "macs": 56_000_000,
        "input_size": [3, 8, 8],
        "epochs": epochs,
        "epochs_planned": epochs,
        "best_top1": max(v or 0 for v in val_top1),
        "best_epoch": 1,
        "last_top1": val_top1[-1],
        "test_top1": top1 if with_eval else None,
        "test_top5": 100.0 if with_eval else None,
        "test_loss": 0.5 if with_eval else None,
        "wall_seconds": 10.0 * epochs,
        "seed": seed,
        "images_per_second": 502.5,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    if with_model_table:
        layers = [
            {
                "name": "features.0",
                "kind": "Conv2d",
                "output_shape": [8, 8, 8],
                "params": 224,
                "macs": 55_000_000,
            },
            {
                "name": "classifier",
                "kind": "Linear",
                "output_shape": [len(classes)],
                "params": 1010,
                "macs": 1_000_000,
            },
        ]
        table = {
            "name": model,
            "input_size": [3, 8, 8],
            "params": 1234,
            "trainable_params": 1234,
            "macs": 56_000_000,
            "layers": layers,
        }
        (run / "model.json").write_text(json.dumps(table))
    if with_checkpoint:
        generator = torch.Generator().manual_seed(seed)
        state = {
            "features.0.weight": torch.randn(8, 3, kernel, kernel, generator=generator),
            "features.0.bias": torch.zeros(8),
            "classifier.weight": torch.randn(len(classes), 8, generator=generator),
        }
        torch.save(
            {"model": state, "config": config, "classes": list(classes), "epoch": epochs},
            run / "checkpoints" / "best.pt",
        )
    if with_eval:
        _write_eval(run / "eval" / "test", classes, matrix, per_class_top1, top1)
    return run


def _diagonal_heavy(size: int) -> list[list[int]]:
    matrix = np.full((size, size), 1, dtype=np.int64)
    np.fill_diagonal(matrix, 8)
    return matrix.tolist()


def _write_eval(
    folder: Path,
    classes: tuple[str, ...],
    matrix: np.ndarray,
    per_class_top1: np.ndarray,
    top1: float,
) -> None:
    folder.mkdir(parents=True)
    correct = int(np.trace(matrix))
    count = int(matrix.sum())
    metrics = {
        "split": "test",
        "tta": "none",
        "count": count,
        "loss": 0.5,
        "top1": top1,
        "top5": 100.0,
        "error_top1": 100.0 - top1,
        "error_top5": 0.0,
        "correct": correct,
        "incorrect": count - correct,
        "classes": list(classes),
        "per_class_top1": per_class_top1.tolist(),
        "per_class_count": matrix.sum(axis=1).tolist(),
        "confusion_matrix": matrix.tolist(),
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rng = np.random.default_rng(0)
    size = 6
    targets = np.arange(size) % len(classes)
    top5 = np.stack([np.roll(np.arange(len(classes)), -int(t)) for t in targets])
    top5[0] = np.roll(top5[0], 1)  # the first sample is misclassified
    top5 = np.pad(top5, ((0, 0), (0, max(0, 5 - len(classes)))), mode="edge")[:, :5]
    probs = np.tile(np.linspace(0.6, 0.05, 5, dtype=np.float32), (size, 1))
    np.savez(
        folder / "samples.npz",
        images=rng.integers(0, 256, (size, 16, 16, 3), dtype=np.uint8),
        targets=targets.astype(np.int64),
        top5_indices=top5.astype(np.int64),
        top5_probs=probs,
        classes=np.asarray(classes),
    )
    with (folder / "predictions.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["sample", "target", "predicted", "top5_classes", "top5_probs"])
        for index, target in enumerate(targets):
            names = [classes[i] for i in top5[index]]
            writer.writerow(
                [
                    index,
                    classes[target],
                    names[0],
                    "|".join(names),
                    "|".join(f"{p:.4f}" for p in probs[index]),
                ]
            )


def test_fixture_run_folder_reads_back_without_warnings(tmp_path: Path) -> None:
    run = load_run(make_run_folder(tmp_path, "run"))
    assert run.warnings == []
    assert run.is_complete
    assert [r.epoch for r in run.epochs] == [1, 2, 3, 4]
    assert run.classes == list(CLASSES)
    assert run.test_eval is not None and run.test_eval.metrics.correct == 24
