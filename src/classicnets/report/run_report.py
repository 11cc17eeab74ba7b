"""The report of one run: `report.html` (self-contained) and `report.md` (+ `report_files/`),
from whatever the run folder holds so far. Missing parts are listed, never guessed."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from classicnets.models.summary import LayerRow, ModelSummary, format_summary
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
from classicnets.report.tables import (
    MISSING,
    format_count,
    format_macs,
    format_number,
    format_seconds,
    format_shown,
)
from classicnets.run_record import (
    EpochRecord,
    EvalFolder,
    EvalMetrics,
    ModelRecord,
    RunFolder,
    Summary,
    load_first_layer_weight,
    load_run,
    read_samples,
    record_dict,
    shown_fields,
)

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
    steps = [record_dict(step) for step in run.steps]
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
            lambda: plots.figure_learning_curves([r.to_dict() for r in run.epochs]),
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
    planned = run.summary.epochs_planned
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
    seed = run.seed()
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
        ["test loss", format_number(run.test_loss(), 4)],
        [
            "test correct / incorrect",
            f"{format_count(test.metrics.correct if test else None)} / "
            f"{format_count(test.metrics.incorrect if test else None)}",
        ],
        *_shown_rows(run.summary),
        ["wall time", format_seconds(run.wall_seconds())],
        ["train images/s", format_number(run.images_per_second(), 1)],
        ["seed", MISSING if seed is None else str(seed)],
    ]
    return Table(["metric", "value"], rows, table_id="metrics")


def _shown_rows(summary: Summary) -> list[list[str]]:
    """A row per Summary field declared with run_record.shown: its label and value."""
    return [
        [spec.metadata["label"], format_shown(spec, getattr(summary, spec.name))]
        for spec in shown_fields(Summary)
    ]


def _columns(record: type, num_classes: int) -> list[Any]:
    """The fields of `record` that a report table shows; top-5 only with over 5 classes."""
    top5 = shows_top5(num_classes)
    return [spec for spec in shown_fields(record) if top5 or "top5" not in spec.name]


def _evaluations_table(run: RunFolder) -> Table:
    specs = _columns(EvalMetrics, len(run.classes))
    headers = ["eval", "split", "TTA", *(spec.metadata["label"] for spec in specs)]
    rows = [
        [
            name,
            result.metrics.split,
            result.metrics.tta,
            *(format_shown(spec, getattr(result.metrics, spec.name)) for spec in specs),
        ]
        for name, result in run.evals.items()
    ]
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
    run: RunFolder, result: EvalFolder, blocks: list[Any], notes: list[str], confusion_counts: bool
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
    per_class = result.metrics.per_class_top1
    if per_class and len(per_class) == len(classes) and classes:
        _add_figure(
            blocks,
            notes,
            "per_class_accuracy",
            f"Per-class top-1 on {source}.",
            lambda: plots.figure_per_class_accuracy(classes, per_class),
        )
        if matrix is not None and matrix.shape == (len(classes), len(classes)):
            blocks.append(per_class_table(classes, matrix))
    elif per_class:
        notes.append(
            f"{source}: per_class_top1 does not match the {len(classes)} classes; "
            "per-class results skipped"
        )
    if result.samples_path is not None:
        samples = read_samples(result.samples_path, notes)
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
    summary, model = run.summary, run.model
    input_size = model.input_size if model is not None else summary.input_size
    params = model.params if model is not None else summary.params
    macs = model.macs if model is not None else summary.macs
    blocks: list[Any] = [
        Heading("Model"),
        Table(
            ["property", "value"],
            [
                ["model", run.model_name],
                ["parameters", format_count(params)],
                ["MACs per image", format_macs(macs)],
                [
                    "input size (C, H, W)",
                    "x".join(str(s) for s in input_size) if input_size else MISSING,
                ],
            ],
        ),
    ]
    if model is not None and model.layers:
        blocks.append(Paragraph("Per-layer table, recorded when the run started (model.json):"))
        blocks.append(Code(format_layers(model), collapsed_summary="Per-layer summary"))
    else:
        why = "has no layer table" if model is not None else "is missing (an older run)"
        blocks.append(Paragraph(f"Per-layer table skipped: the run's model.json {why}."))
    return blocks


def format_layers(model: ModelRecord) -> str:
    """model.json's layer table and totals as plain text, as `classicnets summary` prints it."""
    rows = [
        LayerRow(layer.name, layer.kind, tuple(layer.output_shape), layer.params, layer.macs)
        for layer in model.layers
    ]
    channels, height, width = [*model.input_size, 0, 0, 0][:3]
    summary = ModelSummary(
        rows=rows,
        total_params=model.params or 0,
        trainable_params=model.trainable_params or 0,
        total_macs=model.macs or 0,
        input_shape=(channels, height, width),
    )
    return format_summary(summary)


def _epochs_table(run: RunFolder) -> Table:
    specs = _columns(EpochRecord, len(run.classes))
    rows = [[format_shown(spec, getattr(r, spec.name)) for spec in specs] for r in run.epochs]
    headers = [spec.metadata["label"] for spec in specs]
    return Table(headers, rows, table_id="epochs", collapsed_summary=f"{len(rows)} epochs")


def _config_blocks(run: RunFolder) -> list[Any]:
    blocks: list[Any] = [Heading("Configuration")]
    if run.config:
        blocks.append(Code(yaml.safe_dump(run.config, sort_keys=False), "config.yaml"))
    else:
        blocks.append(Paragraph("No readable config.yaml."))
    blocks.append(Heading("Environment"))
    if run.env is not None:
        rows = []
        for key, value in record_dict(run.env).items():
            if value is None or value == "?":  # absent from this env.json
                continue
            text = shlex.join(str(v) for v in value) if isinstance(value, list) else str(value)
            rows.append([key, text])
        blocks.append(Table(["key", "value"], rows, table_id="environment"))
    else:
        blocks.append(Paragraph("No readable env.json."))
    return blocks
