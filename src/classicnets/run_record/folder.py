"""One run folder read back as typed records (RunFolder), for reports, experiments and the API.

Reading never fails on a partial folder: a run that is still training, was interrupted, has no
evaluation yet, or whose files were cut short or edited by hand is read as far as it goes, and
every gap is listed in `RunFolder.warnings` so that reports can say what is missing.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from classicnets.errors import UserError
from classicnets.run_record.evaluation import (
    EVAL_DIR,
    EVAL_METRICS_FILE,
    SAMPLES_FILE,
    read_eval_metrics,
)
from classicnets.run_record.files import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EPOCHS_FILE,
    SUMMARY_FILE,
    read_environment,
    read_epochs,
    read_model_record,
    read_steps,
    read_summary,
)
from classicnets.run_record.records import (
    Environment,
    EpochRecord,
    EvalMetrics,
    ModelRecord,
    StepRecord,
    Summary,
)

FINISHED_STATUSES = ("complete",)
# Eval folders shown first in reports: the plain test split, then any test-time augmentation.
EVAL_PREFERENCE = (
    "test",
    "test-flip",
    "test-10crop",
    "test-translate_flip",
    "test-translate_flip_weighted",
    "val",
)


@dataclass(frozen=True)
class EvalFolder:
    """One eval/<name>/ folder: metrics.json plus the optional samples.npz."""

    name: str
    metrics: EvalMetrics
    samples_path: Path | None

    @property
    def classes(self) -> list[str]:
        return self.metrics.classes

    @property
    def confusion_matrix(self) -> np.ndarray | None:
        matrix = self.metrics.confusion_matrix
        return np.asarray(matrix, dtype=np.int64) if matrix else None


@dataclass(frozen=True)
class RunFolder:
    """Everything a report needs from one run folder; missing parts are empty or None."""

    path: Path
    config: dict[str, Any]  # config.yaml as written (or edited): not necessarily a RunConfig
    env: Environment | None
    summary: Summary  # Summary() when summary.json is missing or unreadable
    has_summary: bool
    epochs: list[EpochRecord]
    steps: list[StepRecord]
    model: ModelRecord | None
    evals: dict[str, EvalFolder]
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return self.summary.status

    @property
    def is_complete(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def model_name(self) -> str:
        section = self.config.get("model") or {}
        known = self.summary.model if self.summary.model != "?" else None
        return str(known or section.get("name") or "?")

    @property
    def dataset_name(self) -> str:
        section = self.config.get("data") or {}
        known = self.summary.dataset if self.summary.dataset != "?" else None
        return str(known or section.get("name") or "?")

    @property
    def classes(self) -> list[str]:
        """Class names from summary.json, else from the first evaluation."""
        if self.summary.classes:
            return self.summary.classes
        primary = self.primary_eval
        return primary.classes if primary is not None else []

    @property
    def primary_eval(self) -> EvalFolder | None:
        """The evaluation that figures are drawn from: test, then TTA variants, then the rest."""
        for name in EVAL_PREFERENCE:
            if name in self.evals:
                return self.evals[name]
        return next(iter(self.evals.values()), None)

    @property
    def test_eval(self) -> EvalFolder | None:
        return self.evals.get("test")

    def metric_series(self, key: str) -> tuple[list[int], list[float]]:
        """(epochs, values) of one EpochRecord field, leaving out epochs where it is null."""
        epochs, values = [], []
        for record in self.epochs:
            value = getattr(record, key, None)
            if isinstance(value, int | float) and not math.isnan(value):
                epochs.append(record.epoch)
                values.append(float(value))
        return epochs, values

    def first_epoch_reaching(self, key: str, percent: float) -> int | None:
        """The first epoch whose `key` (an EpochRecord field, percent) is at least `percent`."""
        for epoch, value in zip(*self.metric_series(key), strict=True):
            if value >= percent:
                return epoch
        return None

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
        return test.metrics.top1 if test is not None else self.summary.test_top1

    def test_top5(self) -> float | None:
        test = self.test_eval
        return test.metrics.top5 if test is not None else self.summary.test_top5

    def test_loss(self) -> float | None:
        test = self.test_eval
        return test.metrics.loss if test is not None else self.summary.test_loss

    def wall_seconds(self) -> float | None:
        if self.summary.wall_seconds is None and self.epochs:
            return float(
                sum(r.epoch_seconds for r in self.epochs if math.isfinite(r.epoch_seconds))
            )
        return self.summary.wall_seconds

    def images_per_second(self) -> float | None:
        if self.summary.images_per_second is None:
            _, values = self.metric_series("images_per_second")
            return float(np.mean(values)) if values else None
        return self.summary.images_per_second

    def seed(self) -> int | None:
        seed = self.summary.seed
        if seed is None:
            seed = (self.config.get("train") or {}).get("seed")
        return seed if isinstance(seed, int) else None

    def incomplete_reason(self) -> str | None:
        """Why this run is not (yet) a finished run, or None when it is."""
        if not self.has_summary:
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
    markers = (CONFIG_FILE, SUMMARY_FILE, EPOCHS_FILE)
    if not any((path / name).is_file() for name in markers):
        raise UserError(
            f"{path} is not a run folder: it has none of {', '.join(markers)} "
            "(give a folder that `classicnets train` wrote under runs/)"
        )
    warnings: list[str] = []
    config = _read_yaml_mapping(path / CONFIG_FILE, warnings)
    env = read_environment(path, warnings)
    summary = read_summary(path, warnings)
    epochs = read_epochs(path, warnings)
    steps = read_steps(path, warnings)
    model = read_model_record(path, []) if (path / "model.json").is_file() else None
    evals = _read_evals(path / EVAL_DIR, warnings)
    run = RunFolder(
        path,
        config,
        env,
        summary or Summary(),
        summary is not None,
        epochs,
        steps,
        model,
        evals,
        warnings,
    )
    reason = run.incomplete_reason()
    if reason is not None:
        warnings.insert(0, f"incomplete run: {reason}")
    if not evals:
        warnings.append(f"no evaluation yet (no {EVAL_DIR}/*/{EVAL_METRICS_FILE})")
    return run


def _read_evals(eval_dir: Path, warnings: list[str]) -> dict[str, EvalFolder]:
    if not eval_dir.is_dir():
        return {}
    found: dict[str, EvalFolder] = {}
    for folder in sorted(p for p in eval_dir.iterdir() if p.is_dir()):
        metrics = read_eval_metrics(folder, warnings)
        if metrics is None:
            warnings.append(f"{EVAL_DIR}/{folder.name}: no readable {EVAL_METRICS_FILE}; skipped")
            continue
        samples = folder / SAMPLES_FILE
        found[folder.name] = EvalFolder(
            folder.name, metrics, samples if samples.is_file() else None
        )
    ordered = [n for n in EVAL_PREFERENCE if n in found] + [
        n for n in found if n not in EVAL_PREFERENCE
    ]
    return {name: found[name] for name in ordered}


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
        path = run_dir / CHECKPOINTS_DIR / name
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


__all__ = ["EvalFolder", "RunFolder", "load_first_layer_weight", "load_run"]
