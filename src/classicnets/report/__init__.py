"""Reports from run folders: figures, the per-run report and multi-run comparisons.

This package reads run folders only; it never imports classicnets.train or classicnets.data.
"""

from classicnets.report.compare import write_comparison
from classicnets.report.plots import (
    figure_confusion_matrix,
    figure_first_layer_filters,
    figure_learning_curves,
    save_png,
)
from classicnets.report.run_report import write_run_report
from classicnets.run_record import RunFolder, load_run

__all__ = [
    "RunFolder",
    "figure_confusion_matrix",
    "figure_first_layer_filters",
    "figure_learning_curves",
    "load_run",
    "save_png",
    "write_comparison",
    "write_run_report",
]
