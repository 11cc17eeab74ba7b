"""Read one run folder (the layout in docs of the training engine: config.yaml, env.json,
metrics.jsonl, summary.json, eval/<split>/, checkpoints/) into plain Python values.

Reading never fails on a partial folder: a run that is still training, was interrupted, has no
evaluation yet or whose metrics file ends in a truncated line is read as far as it goes, and
every gap is listed in `RunFolder.warnings` so that reports can say what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from classicnets.errors import UserError

log = logging.getLogger(__name__)

FINISHED_STATUSES = ("complete",)
# Eval folders shown first in reports: the plain test split, then any test-time augmentation.
EVAL_PREFERENCE = ("test", "test-flip", "test-10crop", "val")


@dataclass(frozen=True)
class EvalResult:
    """One eval/<name>/ folder: metrics.json plus the optional samples.npz."""

    name: str
    metrics: dict[str, Any]
    samples_path: Path | None

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.metrics.get("classes") or []]

    @property
    def confusion_matrix(self) -> np.ndarray | None:
        matrix = self.metrics.get("confusion_matrix")
        return None if matrix is None else np.asarray(matrix, dtype=np.int64)


@dataclass(frozen=True)
class RunFolder:
    """Everything a report needs from one run folder; missing parts are empty."""

    path: Path
    config: dict[str, Any]
    env: dict[str, Any]
    summary: dict[str, Any]
    epochs: list[dict[str, Any]]
    evals: dict[str, EvalResult]
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return str(self.summary.get("status") or "unknown")

    @property
    def is_complete(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def model_name(self) -> str:
        section = self.config.get("model") or {}
        return str(self.summary.get("model") or section.get("name") or "?")

    @property
    def dataset_name(self) -> str:
        section = self.config.get("data") or {}
        return str(self.summary.get("dataset") or section.get("name") or "?")

    @property
    def classes(self) -> list[str]:
        """Class names from summary.json, else from the first evaluation."""
        names = self.summary.get("classes")
        if names:
            return [str(c) for c in names]
        primary = self.primary_eval
        return primary.classes if primary is not None else []

    @property
    def primary_eval(self) -> EvalResult | None:
        """The evaluation that figures are drawn from: test, then TTA variants, then the rest."""
        for name in EVAL_PREFERENCE:
            if name in self.evals:
                return self.evals[name]
        return next(iter(self.evals.values()), None)

    @property
    def test_eval(self) -> EvalResult | None:
        return self.evals.get("test")

    def metric_series(self, key: str) -> tuple[list[int], list[float]]:
        """(epochs, values) of one EpochRecord field, leaving out epochs where it is null."""
        epochs, values = [], []
        for record in self.epochs:
            value = record.get(key)
            if isinstance(value, int | float) and not math.isnan(value):
                epochs.append(int(record["epoch"]))
                values.append(float(value))
        return epochs, values

    def best_val_top1(self) -> tuple[float | None, int | None]:
        """Best validation top-1 (percent) and its epoch, from metrics.jsonl."""
        epochs, values = self.metric_series("val_top1")
        if not values:
            return None, None
        index = int(np.argmax(values))
        return values[index], epochs[index]

    def last_val_top1(self) -> float | None:
        _, values = self.metric_series("val_top1")
        return values[-1] if values else None

    def test_top1(self) -> float | None:
        test = self.test_eval
        value = test.metrics.get("top1") if test is not None else self.summary.get("test_top1")
        return None if value is None else float(value)

    def test_top5(self) -> float | None:
        test = self.test_eval
        value = test.metrics.get("top5") if test is not None else self.summary.get("test_top5")
        return None if value is None else float(value)

    def wall_seconds(self) -> float | None:
        value = self.summary.get("wall_seconds")
        if value is None and self.epochs:
            seconds = [r.get("epoch_seconds") for r in self.epochs]
            return float(sum(s for s in seconds if isinstance(s, int | float)))
        return None if value is None else float(value)

    def images_per_second(self) -> float | None:
        value = self.summary.get("images_per_second")
        if value is None:
            _, values = self.metric_series("images_per_second")
            return float(np.mean(values)) if values else None
        return float(value)

    def incomplete_reason(self) -> str | None:
        """Why this run is not (yet) a finished run, or None when it is."""
        if not self.summary:
            return "no summary.json (the run never started properly or is from an old version)"
        if self.status == "running":
            return "status is 'running': still training, or stopped without writing its end"
        if not self.is_complete:
            return f"status is {self.status!r}"
        return None


def load_run(path: Path) -> RunFolder:
    """Read a run folder; raise UserError when `path` is not one."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} is not a run folder: no such directory")
    markers = ("config.yaml", "summary.json", "metrics.jsonl")
    if not any((path / name).is_file() for name in markers):
        raise UserError(
            f"{path} is not a run folder: it has none of {', '.join(markers)} "
            "(give a folder that `classicnets train` wrote under runs/)"
        )
    warnings: list[str] = []
    config = _read_yaml_mapping(path / "config.yaml", warnings)
    env = _read_json_mapping(path / "env.json", warnings)
    summary = _read_json_mapping(path / "summary.json", warnings)
    epochs = read_metrics_jsonl(path / "metrics.jsonl", warnings)
    evals = _read_evals(path / "eval", warnings)
    run = RunFolder(path, config, env, summary, epochs, evals, warnings)
    reason = run.incomplete_reason()
    if reason is not None:
        warnings.insert(0, f"incomplete run: {reason}")
    if not evals:
        warnings.append("no evaluation yet (no eval/*/metrics.json)")
    for message in warnings:
        log.debug("%s: %s", path, message)
    return run


def read_metrics_jsonl(path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """EpochRecords sorted by epoch. Unreadable lines are skipped with a warning; when an
    epoch appears twice (a resumed run redid it) the later line wins."""
    if not path.is_file():
        warnings.append("no metrics.jsonl (no epoch has finished)")
        return []
    lines = path.read_text(errors="replace").splitlines()
    by_epoch: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            where = "last line" if number == len(lines) else f"line {number}"
            warnings.append(
                f"metrics.jsonl: skipped the {where}, which is not valid JSON "
                "(truncated while being written?)"
            )
            continue
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if not isinstance(epoch, int):
            warnings.append(f"metrics.jsonl: skipped line {number}, which has no integer 'epoch'")
            continue
        if epoch in by_epoch:
            warnings.append(f"metrics.jsonl: epoch {epoch} appears twice; kept the later line")
        by_epoch[epoch] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def _read_evals(eval_dir: Path, warnings: list[str]) -> dict[str, EvalResult]:
    if not eval_dir.is_dir():
        return {}
    found: dict[str, EvalResult] = {}
    for folder in sorted(p for p in eval_dir.iterdir() if p.is_dir()):
        metrics = _read_json_mapping(folder / "metrics.json", warnings, required=False)
        if not metrics:
            warnings.append(f"eval/{folder.name}: no readable metrics.json; skipped")
            continue
        samples = folder / "samples.npz"
        found[folder.name] = EvalResult(
            folder.name, metrics, samples if samples.is_file() else None
        )
    ordered = [n for n in EVAL_PREFERENCE if n in found] + [
        n for n in found if n not in EVAL_PREFERENCE
    ]
    return {name: found[name] for name in ordered}


def _read_json_mapping(path: Path, warnings: list[str], required: bool = True) -> dict[str, Any]:
    if not path.is_file():
        if required:
            warnings.append(f"no {path.name}")
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        warnings.append(f"{path.name} is unreadable ({error}); ignored")
        return {}
    if not isinstance(data, dict):
        warnings.append(f"{path.name} does not hold a JSON object; ignored")
        return {}
    return data


def _read_yaml_mapping(path: Path, warnings: list[str]) -> dict[str, Any]:
    if not path.is_file():
        warnings.append(f"no {path.name}")
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        warnings.append(f"{path.name} is unreadable ({type(error).__name__}); ignored")
        return {}
    if not isinstance(data, dict):
        warnings.append(f"{path.name} does not hold a mapping; ignored")
        return {}
    return data


@dataclass(frozen=True)
class Samples:
    """eval/<name>/samples.npz: de-normalised uint8 images with their top-5 predictions."""

    images: np.ndarray  # (N, H, W, 3) uint8
    targets: np.ndarray  # (N,)
    top5_indices: np.ndarray  # (N, 5)
    top5_probs: np.ndarray  # (N, 5)
    classes: list[str]


def load_samples(path: Path, warnings: list[str]) -> Samples | None:
    """Read samples.npz, or return None (with a warning) when it is unusable."""
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
        warnings.append(f"{path.parent.name}/samples.npz is unreadable ({error}); no image grid")
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
        warnings.append(f"{path.parent.name}/samples.npz has inconsistent shapes; no image grid")
        return None
    return samples


def load_first_layer_weight(run_dir: Path, warnings: list[str]) -> tuple[np.ndarray, str] | None:
    """The first 4-D weight whose input has 3 channels (the RGB filters), as (out, 3, k, k),
    from the best weights (best.pt, or best.safetensors of a complete run), else last.pt; plus
    the file's name."""
    import torch  # only here: reading a run folder otherwise needs no torch

    best = run_dir / "checkpoints" / "best.safetensors"
    if best.is_file() and not (run_dir / "checkpoints" / "best.pt").is_file():
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(best), device="cpu")
        except Exception as error:  # any read failure means "no usable weights file"
            warnings.append(f"checkpoints/{best.name} is unreadable ({type(error).__name__})")
        else:
            return _rgb_filters({"model": tensors}, best.name, warnings)
    for name in ("best.pt", "last.pt"):
        path = run_dir / "checkpoints" / name
        if not path.is_file():
            continue
        try:
            # mmap: a VGG checkpoint with optimizer state is over 1 GB; read only what we touch.
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:  # any unpickling/zip failure means "no usable checkpoint"
            warnings.append(f"checkpoints/{name} is unreadable ({type(error).__name__}); skipped")
            continue
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
            warnings.append(f"checkpoints/{name} has no 'model' state_dict; skipped")
            continue
        return _rgb_filters(checkpoint, name, warnings)
    return None


def _rgb_filters(
    checkpoint: dict[str, Any], name: str, warnings: list[str]
) -> tuple[np.ndarray, str] | None:
    import torch

    for tensor in checkpoint["model"].values():
        if isinstance(tensor, torch.Tensor) and tensor.ndim == 4 and tensor.shape[1] == 3:
            return tensor.detach().float().cpu().numpy(), name
    warnings.append(f"checkpoints/{name}: no conv weight with 3 input channels")
    return None
