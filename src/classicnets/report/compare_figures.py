"""The comparison document's figures and per-class block: mean learning curves over seeds,
test-set monitoring curves, per-class test top-1 deltas against the first group."""

from __future__ import annotations

import logging
import math

import numpy as np

from classicnets.report import plots
from classicnets.report.document import Image, Paragraph, Table
from classicnets.report.groups import MONITOR_KEY, RunGroup, class_difference
from classicnets.report.tables import format_delta, format_number

log = logging.getLogger(__name__)


def _mean_curve(group: RunGroup, key: str) -> plots.CurveSeries:
    """Mean ± std over the group's runs, on the epochs that every run has a value for."""
    series = [dict(zip(*run.metric_series(key), strict=True)) for run in group.runs]
    common = sorted(set.intersection(*(set(s) for s in series))) if series else []
    stacked = np.asarray([[s[e] for e in common] for s in series], dtype=np.float64)
    mean = stacked.mean(axis=0) if common else np.zeros(0)
    std = stacked.std(axis=0, ddof=1) if common and len(series) > 1 else np.zeros(len(common))
    label = group.label + (f" (n={len(series)})" if len(series) > 1 else "")
    return plots.CurveSeries(label, common, mean.tolist(), std.tolist())


def curves_image(groups: list[RunGroup]) -> Image | Paragraph:
    has_val = any(run.metric_series("val_top1")[0] for g in groups for run in g.runs)
    key, title = ("val_top1", "val top-1") if has_val else ("train_top1", "train top-1 (no val)")
    top1 = [_mean_curve(group, key) for group in groups]
    loss = [_mean_curve(group, "train_loss") for group in groups]
    if not any(s.epochs for s in top1 + loss):
        return Paragraph("No epochs to plot.")
    figure = plots.figure_compare_curves(top1, loss, top1_label=title)
    caption = (
        f"{title} and train loss per epoch; a band is ± one std over seeds, drawn on "
        "the epochs all runs of a group have finished."
    )
    return Image("learning_curves", caption, plots.png_bytes(figure))


def monitor_curves_image(groups: list[RunGroup]) -> Image:
    top1 = [_mean_curve(group, MONITOR_KEY) for group in groups]
    loss = [_mean_curve(group, "train_loss") for group in groups]
    label = "test top-1 (monitoring)"
    figure = plots.figure_compare_curves(top1, loss, top1_label=label)
    caption = (
        "Test top-1 after every epoch (train.monitor_test: test-set monitoring, never used to "
        "select a checkpoint) and train loss."
    )
    return Image("test_monitoring_curves", caption, plots.png_bytes(figure))


def _per_class_means(group: RunGroup) -> tuple[dict[str, float], int]:
    """Class name -> mean test top-1 over the group's runs that have eval/test; and how many."""
    sums: dict[str, list[float]] = {}
    used = 0
    for run in group.runs:
        test = run.test_eval
        values = test.metrics.per_class_top1 if test is not None else None
        if test is None or not values or len(values) != len(test.classes):
            continue
        used += 1
        for name, value in zip(test.classes, values, strict=True):
            sums.setdefault(name, []).append(float(value))
    return {name: float(np.mean(v)) for name, v in sums.items()}, used


def per_class_blocks(groups: list[RunGroup], notes: list[str]) -> list[Table | Image | Paragraph]:
    if len(groups) < 2:
        return [Paragraph("Only one run group: nothing to compare per class.")]
    for group in groups[1:]:
        difference = class_difference(groups[0].runs[0], group.runs[0])
        if difference:
            message = (
                f"per-class deltas skipped: {groups[0].runs[0].path} and "
                f"{group.runs[0].path} have different classes ({difference})"
            )
            notes.append(message)
            log.warning("%s", message)
            return [Paragraph(message[0].upper() + message[1:] + ".")]
    means = [_per_class_means(group) for group in groups]
    if means[0][1] == 0:
        return [
            Paragraph(
                f"Per-class deltas skipped: {groups[0].label} has no eval/test "
                "per-class results to compare against."
            )
        ]
    for group, (_, used) in zip(groups[1:], means[1:], strict=True):
        if used < len(group.runs):
            notes.append(
                f"per-class deltas of {group.label} use {used} of {len(group.runs)} "
                "runs (the others have no eval/test per-class results)"
            )
    reference = means[0][0]
    classes = list(reference)
    headers = ["class", f"{groups[0].label} top-1 (%)"]
    headers += [f"Δ {g.label} (pp)" for g in groups[1:]]
    # A group without per-class results gets NaN deltas, shown as "—" and not drawn.
    deltas = {
        g.label: [m.get(c, math.nan) - reference[c] for c in classes]
        for g, (m, _) in zip(groups[1:], means[1:], strict=True)
    }
    rows = [
        [c, format_number(reference[c]), *(format_delta(deltas[g.label][i]) for g in groups[1:])]
        for i, c in enumerate(classes)
    ]
    blocks: list[Table | Image | Paragraph] = [Table(headers, rows, table_id="per-class-deltas")]
    if len(classes) <= plots.MAX_LABELLED_CLASSES:
        figure = plots.figure_per_class_deltas(classes, deltas, reference=groups[0].label)
        blocks.append(
            Image(
                "per_class_deltas",
                f"Per-class test top-1 minus {groups[0].label}, in points.",
                plots.png_bytes(figure),
            )
        )
    return blocks
