"""TensorBoard images at the end of a run: the test confusion matrix and the conv1 filters.

Scalars are logged per epoch by the training loop; these figures need a finished run folder,
so they are added here, to the same `tensorboard/` log, by `train.tensorboard=true` runs.
"""

from pathlib import Path

from classicnets.report.plots import figure_confusion_matrix, figure_first_layer_filters
from classicnets.report.runs import load_first_layer_weight, load_run


def log_final_figures(run_dir: Path) -> list[str]:
    """Add the figures to run_dir/tensorboard; returns the tags written."""
    from torch.utils.tensorboard import SummaryWriter

    run = load_run(run_dir)
    step = int(run.summary.get("epochs") or 0)
    tags: list[str] = []
    writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
    try:
        test = run.evals.get("test")
        if test is not None and test.confusion_matrix is not None:
            figure = figure_confusion_matrix(test.confusion_matrix, test.classes)
            writer.add_figure("test/confusion_matrix", figure, step)
            tags.append("test/confusion_matrix")
        weight = load_first_layer_weight(Path(run_dir), [])
        if weight is not None:
            writer.add_figure("model/conv1_filters", figure_first_layer_filters(weight[0]), step)
            tags.append("model/conv1_filters")
    finally:
        writer.close()
    return tags
