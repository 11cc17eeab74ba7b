"""TensorBoard at the end of a run: the test confusion matrix, the conv1 filters, and the
run's resolved hyperparameters with its results (the HPARAMS tab compares runs by them).

Scalars are logged per epoch and per log step by the training loop; these need a finished run
folder, so they are added here, to the same `tensorboard/` log, by `train.tensorboard=true` runs.
"""

from pathlib import Path
from typing import Any

from classicnets.report.hyperparameters import format_value, resolved_values
from classicnets.report.plots import figure_confusion_matrix, figure_first_layer_filters
from classicnets.run_record import Summary, load_first_layer_weight, load_run


def log_final_figures(run_dir: Path) -> list[str]:
    """Add the figures to run_dir/tensorboard; returns the tags written."""
    from torch.utils.tensorboard import SummaryWriter

    run = load_run(run_dir)
    step = run.summary.epochs or 0
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
        writer.add_hparams(
            hparams(run.config, run.summary), _results(run.summary), run_name=".", global_step=step
        )
        tags.append("hparams")
    finally:
        writer.close()
    return tags


def hparams(config: dict[str, Any], summary: Summary) -> dict[str, Any]:
    """The resolved config as TensorBoard hyperparameters (numbers, booleans and text)."""
    values = {key: value for key, (value, _) in resolved_values(config, summary).items()}
    return {
        key: value if isinstance(value, bool | int | float | str) else format_value(value)
        for key, value in values.items()
    }


def _results(summary: Summary) -> dict[str, float]:
    values = {
        "best_val_top1": summary.best_top1,
        "test_top1": summary.test_top1,
        "test_top5": summary.test_top5,
    }
    return {f"hparam/{name}": value for name, value in values.items() if value is not None}
