"""The files of one evaluation, eval/<split>[-<tta>]/: metrics.json, predictions.csv and
samples.npz, each with its writer and its reader."""

import csv
import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from classicnets.atomic import atomic_write, atomic_write_text
from classicnets.run_record.fields import read_record, record_dict
from classicnets.run_record.files import read_json_object, write_json
from classicnets.run_record.records import EvalMetrics

EVAL_DIR = "eval"
EVAL_METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
PREDICTIONS_HEADER = ("sample", "target", "predicted", "top5_classes", "top5_probs")
SAMPLES_FILE = "samples.npz"


def eval_folder(run_dir: Path, split: str, tta: str) -> Path:
    """eval/test, eval/test-flip, eval/val-10crop, ..."""
    return run_dir / EVAL_DIR / (split if tta == "none" else f"{split}-{tta}")


def write_eval_metrics(folder: Path, metrics: EvalMetrics) -> None:
    write_json(folder / EVAL_METRICS_FILE, record_dict(metrics))


def read_eval_metrics(folder: Path, notes: list[str]) -> EvalMetrics | None:
    """eval/<name>/metrics.json; a confusion matrix that is not square over the classes is
    dropped with a note (the counts are kept)."""
    source = f"eval/{folder.name}/{EVAL_METRICS_FILE}"
    data = read_json_object(folder / EVAL_METRICS_FILE, notes)
    if data is None:
        return None
    metrics = read_record(EvalMetrics, data, source, notes)
    if metrics is None or not metrics.confusion_matrix:
        return metrics
    side = len(metrics.classes) or len(metrics.confusion_matrix)
    matrix = metrics.confusion_matrix
    if len(matrix) != side or any(len(row) != side for row in matrix):
        notes.append(
            f"{source}: confusion_matrix is not {side} x {side} (one row and column per "
            "class); no confusion figure"
        )
        return dataclasses.replace(metrics, confusion_matrix=[])
    return metrics


def write_predictions(folder: Path, rows: Sequence[Sequence[str]]) -> None:
    """predictions.csv: one row per sample, fields as in PREDICTIONS_HEADER."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PREDICTIONS_HEADER)
    writer.writerows(rows)
    atomic_write_text(folder / PREDICTIONS_FILE, buffer.getvalue())


def read_predictions(folder: Path) -> list[dict[str, str]] | None:
    """predictions.csv's rows as {column: value}, or None when it is absent or unreadable."""
    try:
        with (folder / PREDICTIONS_FILE).open(newline="") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not rows or not set(PREDICTIONS_HEADER[:3]) <= set(rows[0]):
        return None
    return rows


@dataclass(frozen=True)
class Samples:
    """samples.npz: de-normalised uint8 images with their top-5 predictions."""

    images: np.ndarray  # (N, H, W, 3) uint8
    targets: np.ndarray  # (N,) int64
    top5_indices: np.ndarray  # (N, 5) int64
    top5_probs: np.ndarray  # (N, 5) float32
    classes: list[str]


def write_samples(folder: Path, samples: Samples) -> None:
    def write(file: IO[bytes]) -> None:
        np.savez_compressed(
            file,
            images=samples.images,
            targets=samples.targets.astype(np.int64),
            classes=list(samples.classes),
            top5_indices=samples.top5_indices.astype(np.int64),
            top5_probs=samples.top5_probs.astype(np.float32),
        )

    atomic_write(folder / SAMPLES_FILE, write)


def read_samples(path: Path, notes: list[str]) -> Samples | None:
    """Read samples.npz, or return None (with a note) when it is unusable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            samples = Samples(
                images=np.asarray(data["images"]),
                targets=np.asarray(data["targets"]).astype(np.int64),
                top5_indices=np.asarray(data["top5_indices"]).astype(np.int64),
                top5_probs=np.asarray(data["top5_probs"]).astype(np.float32),
                classes=[str(c) for c in data["classes"]],
            )
    except (OSError, KeyError, ValueError) as error:
        notes.append(f"{path.parent.name}/{SAMPLES_FILE} is unreadable ({error}); no image grid")
        return None
    images = samples.images
    if images.ndim == 3:  # (N, H, W) grey images: show them as RGB
        images = images[..., None]
    if images.ndim == 4 and images.shape[-1] == 1:
        samples = dataclasses.replace(samples, images=np.repeat(images, 3, axis=-1))
    count = len(samples.images)
    shapes_ok = (
        samples.images.ndim == 4
        and samples.images.shape[-1] == 3
        and samples.targets.shape == (count,)
        and samples.top5_indices.shape[0] == count
        and samples.top5_probs.shape == samples.top5_indices.shape
    )
    if not shapes_ok:
        notes.append(f"{path.parent.name}/{SAMPLES_FILE} has inconsistent shapes; no image grid")
        return None
    return samples
