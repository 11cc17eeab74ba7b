"""Compared runs image by image: correct and wrong counts on the test split, and one CSV row
per test image with every run's prediction, read from each run's eval/test/predictions.csv
(as the published Imagenette BatchNorm comparison tabulates its two models)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from classicnets.atomic import atomic_write_text
from classicnets.report.document import Paragraph, Table
from classicnets.run_record import RunFolder, eval_folder, read_predictions


def predictions_on_test(run: RunFolder) -> dict[str, tuple[str, str]] | None:
    """sample id -> (target, predicted) of the run's test evaluation, or None without one."""
    rows = read_predictions(eval_folder(run.path, "test", "none"))
    if rows is None:
        return None
    return {row["sample"]: (row["target"], row["predicted"]) for row in rows}


def _labelled_runs(
    groups: Sequence[tuple[str, Sequence[RunFolder]]],
) -> list[tuple[str, RunFolder]]:
    return [
        (label if len(runs) == 1 else f"{label} ({run.run_id})", run)
        for label, runs in groups
        for run in runs
    ]


def outcome_table(groups: Sequence[tuple[str, Sequence[RunFolder]]]) -> Table | Paragraph:
    """Per run: test images, correct, wrong and top-1 counted from its predictions."""
    rows = []
    for name, run in _labelled_runs(groups):
        predictions = predictions_on_test(run)
        if predictions is None:
            rows.append([name, "-", "-", "-", "-"])
            continue
        correct = sum(target == predicted for target, predicted in predictions.values())
        total = len(predictions)
        rows.append(
            [
                name,
                f"{total:,}",
                f"{correct:,}",
                f"{total - correct:,}",
                f"{100 * correct / total:.2f}",
            ]
        )
    if all(row[1] == "-" for row in rows):
        return Paragraph("No run has eval/test/predictions.csv: no per-image counts.")
    return Table(["run", "test images", "correct", "wrong", "top-1 (%)"], rows, table_id="outcomes")


def write_per_image_csv(groups: Sequence[tuple[str, Sequence[RunFolder]]], path: Path) -> int:
    """sample, target and one predicted_<run> column per run, over the images every run with
    predictions scored (in the first such run's order); returns the row count (0: no file)."""
    runs = [(name, predictions_on_test(run)) for name, run in _labelled_runs(groups)]
    present = [(name, predictions) for name, predictions in runs if predictions is not None]
    if not present:
        return 0
    shared = [s for s in present[0][1] if all(s in p for _, p in present[1:])]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["sample", "target", *(f"predicted {name}" for name, _ in present)])
    for sample in shared:
        target = present[0][1][sample][0]
        writer.writerow([sample, target, *(p[sample][1] for _, p in present)])
    atomic_write_text(path, buffer.getvalue())
    return len(shared)
