"""The report of one run: `report.html` (self-contained) and `report.md` (+ `report_files/`),
from whatever the run folder holds so far. Missing parts are listed, never guessed."""

from __future__ import annotations

import importlib
import logging
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from classicnets.config import model_knobs
from classicnets.report import plots
from classicnets.report.document import (
    Code,
    Document,
    Heading,
    Image,
    Notes,
    Paragraph,
    Table,
    write_document,
)
from classicnets.report.hyperparameters import hyperparameter_table
from classicnets.report.per_class import per_class_table, shows_top5
from classicnets.report.runs import (
    EvalResult,
    RunFolder,
    load_first_layer_weight,
    load_run,
    load_samples,
)
from classicnets.report.tables import (
    MISSING,
    format_count,
    format_macs,
    format_number,
    format_seconds,
)
from classicnets.run_record import read_steps, record_dict

log = logging.getLogger(__name__)

REPORT_STEM = "report"
MIN_FILTER_SIDE = 5


def write_run_report(run_dir: Path, *, confusion_counts: bool = False) -> Path:
    """(Re)write run_dir/report.html and run_dir/report.md; return the HTML path.

    Works on partial folders (running, interrupted, not yet evaluated): the report shows what
    exists and says what is missing. Raises UserError when run_dir is not a run folder.
    """
    run = load_run(Path(run_dir))
    document = build_run_document(run, confusion_counts=confusion_counts)
    path = write_document(document, run.path, REPORT_STEM)
    log.debug("wrote %s", path)
    return path


def build_run_document(run: RunFolder, *, confusion_counts: bool = False) -> Document:
    notes = list(run.warnings)
    document = Document(title=f"Run {run.run_id}")
    blocks = document.blocks
    blocks.append(Paragraph(_headline(run)))
    blocks.append(Heading("Hyperparameters"))
    blocks.append(
        Paragraph(
            "As resolved for this run: values marked (resolved) were left to their default in "
            "config.yaml and come from the model, the data set or summary.json."
        )
    )
    blocks.append(hyperparameter_table(run.config, run.summary, run.env))
    blocks.append(Heading("Results"))
    blocks.append(_metrics_table(run))
    if run.evals:
        blocks.append(_evaluations_table(run))
    blocks.append(Heading("Learning curves"))
    steps = [record_dict(step) for step in read_steps(run.path, notes)]
    if steps:
        _add_figure(
            blocks,
            notes,
            "step_curves",
            "Training loss and learning rate at every log step (steps.jsonl), over optimizer "
            "steps; thin lines mark the ends of epochs.",
            lambda: plots.figure_step_curves(steps),
        )
    if len(run.epochs) > 1 or (run.epochs and not steps):  # one epoch is one dot per line
        _add_figure(
            blocks,
            notes,
            "learning_curves",
            "Loss and top-1 per epoch; the dotted line is the learning rate.",
            lambda: plots.figure_learning_curves(run.epochs),
        )
    elif not run.epochs:
        blocks.append(Paragraph("No epoch has finished yet."))
    primary = run.primary_eval
    if primary is not None:
        _add_eval_blocks(run, primary, blocks, notes, confusion_counts)
    weight = load_first_layer_weight(run.path, notes)
    # 3x3 kernels (the CIFAR nets' first layer) show as flat squares: only 5x5 and larger.
    if weight is not None and min(weight[0].shape[2:]) >= MIN_FILTER_SIDE:
        blocks.append(Heading("First-layer filters"))
        array, checkpoint = weight
        _add_figure(
            blocks,
            notes,
            "first_layer_filters",
            f"Each kernel min-max scaled to RGB (AlexNet Fig. 3 style), from "
            f"checkpoints/{checkpoint}.",
            lambda: plots.figure_first_layer_filters(array),
        )
    blocks.extend(_model_blocks(run, notes))
    if run.epochs:
        blocks.append(Heading("Epochs"))
        blocks.append(_epochs_table(run))
    blocks.extend(_config_blocks(run))
    if notes:
        # Insert after the headline so a reader sees what is missing before any number.
        blocks.insert(1, Notes("Incomplete or irregular run folder", notes))
    return document


def _headline(run: RunFolder) -> str:
    finished = len(run.epochs)
    planned = run.summary.get("epochs_planned")
    if planned is None:
        planned = (run.config.get("train") or {}).get("epochs")
    epochs = f"{finished}/{planned} epochs" if planned is not None else f"{finished} epochs"
    return (
        f"Model {run.model_name} on {run.dataset_name}, {len(run.classes)} classes; "
        f"status: {run.status}; {epochs}."
    )


def _metrics_table(run: RunFolder) -> Table:
    top5 = shows_top5(len(run.classes))
    best, best_epoch = run.best_val_top1()
    test = run.test_eval
    rows = [
        ["status", run.status + ("" if run.is_complete else " (incomplete)")],
        ["epochs finished", str(len(run.epochs))],
        [
            "best val top-1 (%)",
            format_number(best) + (f" (epoch {best_epoch})" if best_epoch else ""),
        ],
        ["last val top-1 (%)", format_number(run.last_val_top1())],
        ["test top-1 (%)", format_number(run.test_top1())],
        *([["test top-5 (%)", format_number(run.test_top5())]] if top5 else []),
        [
            "test loss",
            format_number(
                _float(test.metrics.get("loss")) if test else _float(run.summary.get("test_loss")),
                4,
            ),
        ],
        [
            "test correct / incorrect",
            f"{format_count(_metric(test, 'correct'))} / "
            f"{format_count(_metric(test, 'incorrect'))}",
        ],
        ["parameters", format_count(_float(run.summary.get("params")))],
        ["MACs per image", format_macs(_float(run.summary.get("macs")))],
        ["wall time", format_seconds(run.wall_seconds())],
        ["train images/s", format_number(run.images_per_second(), 1)],
        [
            "seed",
            str(run.summary.get("seed", (run.config.get("train") or {}).get("seed", MISSING))),
        ],
    ]
    return Table(["metric", "value"], rows, table_id="metrics")


def _metric(result: EvalResult | None, key: str) -> float | None:
    return None if result is None else _float(result.metrics.get(key))


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _evaluations_table(run: RunFolder) -> Table:
    top5 = shows_top5(len(run.classes))
    headers = [
        "eval",
        "split",
        "TTA",
        "images",
        "top-1 (%)",
        *(["top-5 (%)"] if top5 else []),
        "error top-1 (%)",
        "loss",
        "correct",
        "incorrect",
    ]
    rows = []
    for name, result in run.evals.items():
        m = result.metrics
        rows.append(
            [
                name,
                str(m.get("split", MISSING)),
                str(m.get("tta", MISSING)),
                format_count(_float(m.get("count"))),
                format_number(_float(m.get("top1"))),
                *([format_number(_float(m.get("top5")))] if top5 else []),
                format_number(_float(m.get("error_top1"))),
                format_number(_float(m.get("loss")), 4),
                format_count(_float(m.get("correct"))),
                format_count(_float(m.get("incorrect"))),
            ]
        )
    return Table(headers, rows, table_id="evaluations")


def _add_figure(
    blocks: list[Any], notes: list[str], name: str, caption: str, build: Callable[[], Figure]
) -> None:
    """Render one figure; malformed input becomes a note instead of a failed report."""
    try:
        png = plots.png_bytes(build())
    except (ValueError, IndexError, KeyError, TypeError) as error:
        notes.append(f"figure {name} skipped: {plots.failure_reason(error)}")
        return
    blocks.append(Image(name, caption, png))


def _add_eval_blocks(
    run: RunFolder, result: EvalResult, blocks: list[Any], notes: list[str], confusion_counts: bool
) -> None:
    source = f"eval/{result.name}"
    classes = result.classes or run.classes
    matrix = result.confusion_matrix
    blocks.append(Heading(f"Errors on {source}"))
    if matrix is not None:
        _add_figure(
            blocks,
            notes,
            "confusion_matrix",
            f"Confusion matrix on {source}, each row normalised to its true class.",
            lambda: plots.figure_confusion_matrix(
                matrix, classes, show_counts=confusion_counts, title=f"confusion matrix ({source})"
            ),
        )
    per_class = result.metrics.get("per_class_top1")
    if isinstance(per_class, list) and len(per_class) == len(classes) and classes:
        _add_figure(
            blocks,
            notes,
            "per_class_accuracy",
            f"Per-class top-1 on {source}.",
            lambda: plots.figure_per_class_accuracy(classes, per_class),
        )
        if matrix is not None and matrix.shape == (len(classes), len(classes)):
            blocks.append(per_class_table(classes, matrix))
    elif per_class is not None:
        notes.append(
            f"{source}: per_class_top1 does not match the {len(classes)} classes; "
            "per-class results skipped"
        )
    if result.samples_path is not None:
        samples = load_samples(result.samples_path, notes)
        if samples is not None and len(samples.images):
            _add_figure(
                blocks,
                notes,
                "samples",
                f"Images from {source} with predicted and true class.",
                lambda: plots.figure_sample_grid(samples),
            )
            if shows_top5(len(classes)):
                _add_figure(
                    blocks,
                    notes,
                    "top5",
                    f"Top-5 predictions for a few images from {source} (true class green).",
                    lambda: plots.figure_top5(samples),
                )


def _model_blocks(run: RunFolder, notes: list[str]) -> list[Any]:
    summary = run.summary
    input_size = summary.get("input_size")
    blocks: list[Any] = [
        Heading("Model"),
        Table(
            ["property", "value"],
            [
                ["model", run.model_name],
                ["parameters", format_count(_float(summary.get("params")))],
                ["MACs per image", format_macs(_float(summary.get("macs")))],
                [
                    "input size (C, H, W)",
                    "x".join(str(s) for s in input_size) if input_size else MISSING,
                ],
            ],
        ),
    ]
    text, note = layer_summary(run)
    if text is not None:
        blocks.append(Code(text, collapsed_summary="Per-layer summary"))
    elif note is not None:
        blocks.append(Paragraph(note))
    return blocks


def layer_summary(run: RunFolder) -> tuple[str | None, str | None]:
    """The per-layer table from classicnets.models.summary, or (None, why it was skipped).

    A model that fails to build, or builds with a different parameter count than the run
    recorded, gives no table: a wrong architecture is worse than none.
    """
    input_size = run.summary.get("input_size")
    if not input_size or not run.classes:
        return None, "Per-layer table skipped: summary.json has no input_size or classes."
    try:
        models = importlib.import_module("classicnets.models")
        summary_module = importlib.import_module("classicnets.models.summary")
    except Exception as error:  # the models package may be absent or broken in this checkout
        return None, f"Per-layer table skipped: classicnets.models is unavailable ({error})."
    section = run.config.get("model") or {}
    knobs = {k: section[k] for k in model_knobs() if section.get(k) is not None}
    try:
        model = models.build_model(run.model_name, num_classes=len(run.classes), **knobs)
        params = sum(p.numel() for p in model.parameters())
        expected = run.summary.get("params")
        if expected is not None and params != expected:
            return None, (
                f"Per-layer table skipped: the rebuilt model has {params:,} parameters "
                f"but the run recorded {expected:,}."
            )
        text = summary_module.format_summary(summary_module.summarize(model, tuple(input_size)))
    except Exception as error:  # any failure to rebuild only costs the optional table
        return None, f"Per-layer table skipped: the model did not build ({error})."
    return str(text), None


def _epochs_table(run: RunFolder) -> Table:
    top5 = shows_top5(len(run.classes))
    headers = [
        "epoch",
        "lr (first step)",
        "train loss",
        "train top-1",
        "val loss",
        "val top-1",
        *(["val top-5"] if top5 else []),
        "seconds",
        "images/s",
    ]
    rows = []
    for r in run.epochs:
        rows.append(
            [
                str(r["epoch"]),
                _format_lr(_float(r.get("lr"))),
                format_number(_float(r.get("train_loss")), 4),
                format_number(_float(r.get("train_top1"))),
                format_number(_float(r.get("val_loss")), 4),
                format_number(_float(r.get("val_top1"))),
                *([format_number(_float(r.get("val_top5")))] if top5 else []),
                format_number(_float(r.get("epoch_seconds")), 1),
                format_number(_float(r.get("images_per_second")), 1),
            ]
        )
    return Table(headers, rows, table_id="epochs", collapsed_summary=f"{len(rows)} epochs")


def _format_lr(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3g}"


def _config_blocks(run: RunFolder) -> list[Any]:
    blocks: list[Any] = [Heading("Configuration")]
    if run.config:
        blocks.append(Code(yaml.safe_dump(run.config, sort_keys=False), "config.yaml"))
    else:
        blocks.append(Paragraph("No readable config.yaml."))
    blocks.append(Heading("Environment"))
    if run.env:
        rows = []
        for key, value in run.env.items():
            text = shlex.join(str(v) for v in value) if isinstance(value, list) else str(value)
            rows.append([key, text])
        blocks.append(Table(["key", "value"], rows, table_id="environment"))
    else:
        blocks.append(Paragraph("No readable env.json."))
    return blocks
