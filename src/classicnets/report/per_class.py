"""Per-class results from a confusion matrix: recall (the class's top-1), precision and F1,
and the class each one is most often mistaken for."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from classicnets.report.document import Table
from classicnets.report.tables import MISSING, format_count, format_number

# Up to this many classes, top-5 accuracy is (nearly) always 100% and says nothing: hidden.
TOP5_MIN_CLASSES = 6


def shows_top5(num_classes: int) -> bool:
    return num_classes >= TOP5_MIN_CLASSES


def precision_recall_f1(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class, in percent: precision (of the images predicted as it), recall (of its
    images), and their harmonic mean F1; a class never predicted has precision 0."""
    counts = np.asarray(matrix, dtype=np.float64)
    correct = np.diag(counts)
    predicted = counts.sum(axis=0)
    actual = counts.sum(axis=1)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, actual, out=np.zeros_like(correct), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(correct), where=total > 0)
    return 100 * precision, 100 * recall, 100 * f1


def per_class_table(classes: Sequence[str], matrix: np.ndarray) -> Table:
    """One row per class, worst F1 first."""
    precision, recall, f1 = precision_recall_f1(matrix)
    rows = []
    for index in np.argsort(f1, kind="stable"):
        row = np.asarray(matrix[index]).copy()
        row[index] = 0
        confused = MISSING
        if row.sum() > 0:
            other = int(np.argmax(row))
            confused = f"{classes[other]} ({row[other]})"
        rows.append(
            [
                classes[index],
                format_count(float(np.asarray(matrix[index]).sum())),
                format_number(float(precision[index])),
                format_number(float(recall[index])),
                format_number(float(f1[index])),
                confused,
            ]
        )
    return Table(
        [
            "class",
            "images",
            "precision (%)",
            "recall = top-1 (%)",
            "F1 (%)",
            "most often predicted instead",
        ],
        rows,
        table_id="per-class",
        collapsed_summary="Per-class table (worst F1 first)",
    )
