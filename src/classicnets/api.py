"""The Python API (docs/api.md): train a preset, get a `Run` back, look at it in a notebook.

`train("default", epochs=1)` runs exactly what `classicnets train --preset default --set
train.epochs=1` runs, and a `Run` reads the same run folder that the CLI's reports read.
Keyword overrides name a config field by its own name when only one section has it
(`epochs`, `lr`, `batch_size`), by `section__field` otherwise (`data__name`), or set a whole
section's `name` (`model="vgg16_bn_cifar"`).
"""

import contextlib
import dataclasses
import datetime
import difflib
import functools
import html
import logging
import sys
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from torch import nn

from classicnets import config as config_module
from classicnets.config import RunConfig, TestViews, config_from_dict, config_to_dict
from classicnets.errors import UserError
from classicnets.export import ExportFormat, export_model
from classicnets.models import build_model
from classicnets.report import plots, write_comparison, write_run_report
from classicnets.run_record import RunFolder, record_dict
from classicnets.run_record import load_run as read_run_folder
from classicnets.train.loop import fit
from classicnets.trained import (
    ImageInput,
    Prediction,
    TrainedModel,
    evaluate_trained,
    load_trained,
    predict,
)

log = logging.getLogger(__name__)

SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig))


def _field_paths() -> dict[str, list[str]]:
    """Each field name -> the `section.field` keys that have it."""
    paths: dict[str, list[str]] = {}
    for section, section_type in typing.get_type_hints(RunConfig).items():
        for item in dataclasses.fields(section_type):
            paths.setdefault(item.name, []).append(f"{section}.{item.name}")
    return paths


def _keyword_key(keyword: str, paths: dict[str, list[str]]) -> str:
    if "__" in keyword:
        return keyword.replace("__", ".")
    found = paths.get(keyword)
    if found is None:
        close = difflib.get_close_matches(keyword, sorted(paths), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UserError(f"unknown config field {keyword!r}{hint}")
    if len(found) > 1:
        spelled = ", ".join(key.replace(".", "__") for key in found)
        raise UserError(f"{keyword!r} is in several sections; write one of {spelled}")
    return found[0]


def apply_keywords(tree: dict[str, Any], keywords: dict[str, Any]) -> dict[str, Any]:
    """Set keyword overrides (Python values, coerced and checked later) in a config dict."""
    paths = _field_paths()
    for keyword, value in keywords.items():
        if keyword in SECTIONS and not isinstance(value, dict):
            keyword, value = f"{keyword}__name", value
        if keyword in SECTIONS:
            tree.setdefault(keyword, {}).update(value)
            continue
        section, _, name = _keyword_key(keyword, paths).partition(".")
        node = tree.setdefault(section, {})
        if not isinstance(node, dict):
            raise UserError(f"{section} is not a section")
        node[name] = value
    return tree


def load_config(
    preset: str | Path | RunConfig | None = None,
    overrides: Sequence[str] = (),
    **keywords: Any,
) -> RunConfig:
    """The resolved config: defaults < preset < `a.b=value` strings < keyword overrides."""
    if isinstance(preset, RunConfig):
        tree = config_module.apply_overrides(config_to_dict(preset), overrides)
    else:
        resolved = config_module.load_config(str(preset) if preset else None, overrides)
        tree = config_to_dict(resolved)
    return config_from_dict(apply_keywords(tree, keywords))


@contextlib.contextmanager
def _log_to_console() -> Iterator[None]:
    """Show classicnets' INFO lines (epoch summaries) when nothing else is set up to, as in a
    fresh notebook; a program that configured logging keeps its own handlers."""
    package = logging.getLogger("classicnets")
    if logging.getLogger().handlers or package.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)


def run_training(
    config: RunConfig, out: Path, *, resume: Path | None = None, command: Sequence[str] = ()
) -> Path:
    """What `classicnets train` and `train()` both do: fit, then write the run's report (and
    its TensorBoard figures when train.tensorboard is on); returns the run folder."""
    from classicnets.report.tensorboard import log_final_figures
    from classicnets.train.distributed import is_main_process

    if resume is not None:
        folder = fit(config, resume=resume, command=command)
    else:
        folder = fit(config, out, command=command)
    if is_main_process():  # under torchrun, rank 0 reports for the run
        write_run_report(folder)
        if config.train.tensorboard:
            log_final_figures(folder)
    return folder


def train(
    preset_or_config: str | Path | RunConfig = "default",
    *,
    out: str | Path = "runs",
    **overrides: Any,
) -> "Run":
    """Train a preset (a name in configs/ or a YAML path) or a RunConfig; return its Run.

    The run folder goes under `out` and gets report.html, as `classicnets train` writes them.
    """
    config = load_config(preset_or_config, **overrides)
    with _log_to_console():
        folder = run_training(config, Path(out), command=[sys.argv[0], "classicnets.train()"])
    return Run(folder)


def load_run(folder: str | Path) -> "Run":
    """The Run of a run folder that `train` or `classicnets train` wrote."""
    run = Run(Path(folder))
    run.record()  # fails now, with one line, if this is not a run folder
    return run


class Report:
    """A written report.html; shows inline in Jupyter (in a frame, so its styles stay apart)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"Report({str(self.path)!r})"

    def _repr_html_(self) -> str:
        page = html.escape(self.path.read_text(), quote=True)
        return (
            f'<iframe srcdoc="{page}" style="width: 100%; height: 720px; border: 1px solid '
            f'#ddd"></iframe><p>{html.escape(str(self.path))}</p>'
        )


class Run:
    """One run folder, read on demand: every property reflects the folder as it is now."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r})"

    def record(self) -> RunFolder:
        """Everything the reports read from the folder (config, epochs, evaluations)."""
        return read_run_folder(self.folder)

    @property
    def config(self) -> RunConfig:
        from classicnets.train.run_folder import load_run_config

        return load_run_config(self.folder)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per finished epoch (metrics.jsonl): lr, train/val loss and top-1, ..."""
        return [record.to_dict() for record in self.record().epochs]

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json: status, best and test top-1, parameters, wall time, seed."""
        return record_dict(self.record().summary)

    @functools.cached_property
    def trained(self) -> TrainedModel:
        return load_trained(self.folder)

    @property
    def model(self) -> nn.Module:
        """The trained model (best weights by val top-1), in eval mode on the CPU."""
        return self.trained.model

    def report(self, *, confusion_counts: bool = False) -> Report:
        """(Re)write report.html, the same file `classicnets report` writes, and return it."""
        return Report(write_run_report(self.folder, confusion_counts=confusion_counts))

    def evaluate(
        self, split: str = "test", tta: TestViews = "none", out: str | Path | None = None
    ) -> dict[str, Any]:
        """Score the best weights on a split; writes eval/<split>[-<tta>]/ (in the run folder
        unless `out` is given) and returns its metrics (top1, top5, loss, per class ...)."""
        return evaluate_trained(self.trained, split, tta, Path(out) if out else None)

    def predict(self, images: ImageInput | Sequence[ImageInput], k: int = 5) -> list[Prediction]:
        """Top-k classes of image files, PIL images or (H, W, 3) uint8 arrays."""
        return predict(self.trained, images, k)

    def export(
        self, export_format: ExportFormat = "torch.export", path: str | Path | None = None
    ) -> Path:
        """Write the model as ONNX or a torch.export program (default: <run>/export/)."""
        return export_model(self.trained, export_format, Path(path) if path else None)

    def plot_curves(self) -> Figure:
        """Loss, top-1 and learning rate per epoch (the report's learning-curve figure)."""
        return plots.figure_learning_curves(self.history)

    def plot_confusion(self, counts: bool = False) -> Figure:
        """The confusion matrix of the test evaluation (or the first one there is)."""
        record = self.record()
        result = record.primary_eval
        matrix = result.confusion_matrix if result is not None else None
        if result is None or matrix is None:
            raise UserError(f"{self.folder} has no evaluation yet; call run.evaluate() first")
        classes = result.classes or record.classes
        return plots.figure_confusion_matrix(
            matrix, classes, show_counts=counts, title=f"confusion matrix (eval/{result.name})"
        )

    def _repr_html_(self) -> str:
        record = self.record()
        rows = [
            ("folder", str(self.folder)),
            ("model", record.model_name),
            ("data", record.dataset_name),
            ("status", record.status),
            ("epochs", str(len(record.epochs))),
            ("best val top-1 (%)", _percent(record.best_val_top1()[0])),
            ("test top-1 (%)", _percent(record.test_top1())),
        ]
        cells = "".join(
            f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>"
            for key, value in rows
        )
        return f"<table>{cells}</table><p>run.report() shows the whole report.</p>"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


class Comparison:
    """A written comparison.html; shows inline in Jupyter like a Report."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"Comparison({str(self.path)!r})"

    def _repr_html_(self) -> str:
        return Report(self.path)._repr_html_()


def default_compare_folder(first_run: Path) -> Path:
    """runs/compare-<timestamp> beside the first run; -2, -3 ... if that folder exists."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(first_run).resolve().parent / f"compare-{stamp}"
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def default_labels(folders: Sequence[Path]) -> list[str]:
    """The shortest labels that tell runs apart: model names, else model and seed, else
    the run folder names (numbered if a folder is given twice)."""
    loaded = [read_run_folder(folder) for folder in folders]
    for labels in (
        [run.model_name for run in loaded],
        [
            f"{run.model_name} seed {run.seed() if run.seed() is not None else '?'}"
            for run in loaded
        ],
    ):
        if len(set(labels)) == len(labels):
            return labels
    names: list[str] = []
    for run in loaded:
        names.append(run.run_id if run.run_id not in names else f"{run.run_id}#{len(names) + 1}")
    return names


def compare(
    runs: Sequence["Run | str | Path"],
    labels: Sequence[str] | None = None,
    *,
    out: str | Path | None = None,
    at: Sequence[float] = (),
) -> Comparison:
    """Write the comparison of runs (as `classicnets compare` does) and return it.

    `at` lists top-1 thresholds (percent) for the epochs-to-reach table.
    """
    folders = [run.folder if isinstance(run, Run) else Path(run) for run in runs]
    if not folders:
        raise UserError("nothing to compare: give at least one run")
    names = list(labels) if labels is not None else default_labels(folders)
    if len(names) != len(folders):
        raise UserError(f"{len(names)} labels for {len(folders)} runs; give one per run")
    target = Path(out) if out is not None else default_compare_folder(folders[0])
    groups = [(label, [folder]) for label, folder in zip(names, folders, strict=True)]
    return Comparison(write_comparison(groups, target, at))


__all__ = [
    "Comparison",
    "Prediction",
    "Report",
    "Run",
    "RunConfig",
    "build_model",
    "compare",
    "load_config",
    "load_run",
    "train",
]
