"""Report figures, one function per figure, each returning a `matplotlib.figure.Figure`.

Figures are built on `Figure` directly rather than through pyplot, so nothing here touches
pyplot's global state or needs a display: PNGs are rendered by the Agg canvas, and the
engine can hand the same figures to TensorBoard's `SummaryWriter.add_figure`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from classicnets.atomic import atomic_write

if TYPE_CHECKING:
    import torch

    from classicnets.run_record import Samples

MAX_LABELLED_CLASSES = 40  # beyond this, class names on axes overlap and are left out
MAX_COUNT_ANNOTATIONS = 20  # beyond this, numbers in confusion-matrix cells are unreadable
CORRECT_COLOR = "tab:green"
WRONG_COLOR = "tab:red"


class ReportFigure(Figure):
    """A Figure that Jupyter draws inline as PNG without pyplot (which registers that only
    for the figures it makes)."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


def plain(text: object) -> str:
    """`text` as written on a figure: matplotlib reads $...$ as mathtext, and a class or run
    name holding dollars would be typeset as maths or fail to render."""
    return str(text).replace("$", r"\$")


def failure_reason(error: Exception) -> str:
    """Why a figure failed, in one line: mathtext errors put the fact on their last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1]}" if lines else type(error).__name__


def png_bytes(figure: Figure, dpi: int = 100) -> bytes:
    """Render a figure to PNG with the Agg canvas."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def save_png(figure: Figure, path: Path, dpi: int = 100) -> Path:
    data = png_bytes(figure, dpi)

    def write(file: IO[bytes]) -> None:
        file.write(data)

    atomic_write(path, write)
    return path


def figure_learning_curves(epochs: Sequence[Mapping[str, Any]]) -> Figure:
    """Train/val loss (left) and top-1 (right) per epoch, with the learning rate on a twin axis
    of the top-1 panel. Epochs where a value is null are left out of that line."""
    figure = ReportFigure(figsize=(11, 4), layout="constrained")
    loss_axes, top1_axes = figure.subplots(1, 2)
    for key, label, style in (("train_loss", "train", "-"), ("val_loss", "val", "--")):
        x, y = _series(epochs, key)
        if x:
            loss_axes.plot(x, y, style, marker="o", markersize=3, label=label)
    for key, label, style in (("train_top1", "train", "-"), ("val_top1", "val", "--")):
        x, y = _series(epochs, key)
        if x:
            top1_axes.plot(x, y, style, marker="o", markersize=3, label=f"{label} top-1")
    loss_axes.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    top1_axes.set(title="top-1 accuracy", xlabel="epoch", ylabel="top-1 (%)")
    x, lr = _series(epochs, "lr")
    if x:
        lr_axes = top1_axes.twinx()
        lr_axes.plot(x, lr, ":", color="gray", label="lr")
        if min(lr) > 0 and max(lr) / min(lr) > 20:
            lr_axes.set_yscale("log")
        lr_axes.set_ylabel("learning rate", color="gray")
        lines = top1_axes.get_lines() + lr_axes.get_lines()
        top1_axes.legend(lines, [str(line.get_label()) for line in lines], loc="lower right")
    elif top1_axes.get_lines():
        top1_axes.legend(loc="lower right")
    if loss_axes.get_lines():
        loss_axes.legend(loc="upper right")
    for axes in (loss_axes, top1_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    return figure


def figure_step_curves(steps: Sequence[Mapping[str, Any]]) -> Figure:
    """The training loss (left) and the learning rate (right) at every log step, over
    optimizer steps: what a schedule really did, including within an epoch. Thin vertical
    lines mark the ends of epochs."""
    figure = ReportFigure(figsize=(11, 3.6), layout="constrained")
    loss_axes, lr_axes = figure.subplots(1, 2)
    points = [r for r in steps if _is_number(r.get("train_loss")) and _is_number(r.get("lr"))]
    x = [int(r["step"]) for r in points]
    loss_axes.plot(x, [float(r["train_loss"]) for r in points], "-", marker=".", markersize=3)
    lr = [float(r["lr"]) for r in points]
    lr_axes.plot(x, lr, "-", color="tab:purple", marker=".", markersize=3)
    if lr and min(lr) > 0 and max(lr) / min(lr) > 100:
        lr_axes.set_yscale("log")
    loss_axes.set(title="training loss per log step", xlabel="optimizer step", ylabel="loss")
    lr_axes.set(title="learning rate per log step", xlabel="optimizer step", ylabel="lr")
    ends: dict[int, int] = {}
    for record in points:
        ends[int(record["epoch"])] = max(int(record["step"]), ends.get(int(record["epoch"]), 0))
    for axes in (loss_axes, lr_axes):
        axes.grid(alpha=0.3)
        for epoch in sorted(ends)[:-1]:
            axes.axvline(ends[epoch], color="gray", linewidth=0.6, alpha=0.5)
    return figure


def _series(epochs: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(int(r["epoch"]), float(r[key])) for r in epochs if _is_number(r.get(key))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def normalize_confusion(matrix: np.ndarray) -> np.ndarray:
    """Row-normalise a confusion matrix (rows = true class): each row sums to 1, or stays 0
    for a class with no samples."""
    counts = np.asarray(matrix, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    rates: np.ndarray = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return rates


def confusion_accuracy(matrix: np.ndarray) -> float:
    """Overall accuracy (fraction) of a confusion matrix: the diagonal over the total."""
    counts = np.asarray(matrix, dtype=np.float64)
    total = counts.sum()
    return float(np.trace(counts) / total) if total > 0 else float("nan")


def figure_confusion_matrix(
    matrix: np.ndarray | Sequence[Sequence[int]],
    classes: Sequence[str],
    *,
    show_counts: bool = False,
    title: str = "confusion matrix",
) -> Figure:
    """Row-normalised confusion matrix (rows = true, columns = predicted), class names on both
    axes, overall accuracy and misclassification rate under the x axis. With `show_counts`,
    each cell also shows its raw count (only up to MAX_COUNT_ANNOTATIONS classes)."""
    counts = np.asarray(matrix, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(classes):
        raise ValueError(f"confusion matrix {counts.shape} does not match {len(classes)} classes")
    rates = normalize_confusion(counts)
    size = len(classes)
    side = float(np.clip(0.45 * size + 2.5, 4.5, 14.0))
    figure = ReportFigure(figsize=(side + 1.2, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    if size <= MAX_LABELLED_CLASSES:
        axes.set_xticks(range(size), labels=[plain(c) for c in classes], rotation=90)
        axes.set_yticks(range(size), labels=[plain(c) for c in classes])
    if size <= MAX_COUNT_ANNOTATIONS:
        for row in range(size):
            for column in range(size):
                text = f"{rates[row, column]:.2f}"
                if show_counts:
                    text += f"\n({counts[row, column]})"
                color = "white" if rates[row, column] > 0.5 else "black"
                axes.text(column, row, text, ha="center", va="center", fontsize=7, color=color)
    accuracy = confusion_accuracy(counts)
    axes.set_xlabel(
        f"predicted class\naccuracy {100 * accuracy:.2f}% · "
        f"misclassified {100 * (1 - accuracy):.2f}% (n={int(counts.sum())})"
    )
    axes.set_ylabel("true class")
    axes.set_title(plain(title))
    return figure


def figure_per_class_accuracy(
    classes: Sequence[str],
    per_class_top1: Sequence[float],
    *,
    max_classes: int = MAX_LABELLED_CLASSES,
) -> Figure:
    """Horizontal bars of per-class top-1 (percent), worst class at the top; with more classes
    than `max_classes`, only the worst `max_classes` are drawn (the title says so)."""
    order = np.argsort(np.asarray(per_class_top1, dtype=np.float64), kind="stable")
    shown = order[:max_classes]
    names = [plain(classes[i]) for i in shown]
    values = [float(per_class_top1[i]) for i in shown]
    figure = ReportFigure(figsize=(7, 0.28 * len(shown) + 1.4), layout="constrained")
    axes = figure.subplots()
    axes.barh(range(len(shown)), values, color="tab:blue")
    axes.set_yticks(range(len(shown)), labels=names)
    axes.invert_yaxis()  # worst first, at the top
    axes.set_xlim(0, 100)
    axes.set_xlabel("top-1 (%)")
    mean = float(np.mean(per_class_top1)) if len(per_class_top1) else float("nan")
    axes.axvline(mean, color="gray", linestyle="--", label=f"class mean {mean:.1f}%")
    axes.legend(loc="lower right")
    hidden = len(classes) - len(shown)
    axes.set_title(
        "per-class top-1, worst first" + (f" ({hidden} best not shown)" if hidden else "")
    )
    axes.grid(axis="x", alpha=0.3)
    return figure


def filter_mosaic(weight: np.ndarray | torch.Tensor, columns: int | None = None) -> np.ndarray:
    """Tile (out, 3, k, k) kernels into one RGB image (H, W, 3) in [0, 1], each kernel min-max
    scaled on its own as in AlexNet Fig. 3, with a 1-pixel white border between kernels."""
    kernels = _as_numpy(weight).astype(np.float64)
    if kernels.ndim != 4 or kernels.shape[1] != 3:
        raise ValueError(f"expected a conv weight of shape (out, 3, k, k), got {kernels.shape}")
    count, _, height, width = kernels.shape
    columns = columns or int(np.ceil(np.sqrt(count * 4 / 3)))  # a landscape grid, like Fig. 3
    rows = int(np.ceil(count / columns))
    low = kernels.min(axis=(1, 2, 3), keepdims=True)
    span = kernels.max(axis=(1, 2, 3), keepdims=True) - low
    scaled = np.divide(kernels - low, span, out=np.full_like(kernels, 0.5), where=span > 0)
    mosaic = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1, 3))
    for index in range(count):
        top = 1 + (index // columns) * (height + 1)
        left = 1 + (index % columns) * (width + 1)
        mosaic[top : top + height, left : left + width] = scaled[index].transpose(1, 2, 0)
    return mosaic


def _as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if hasattr(array, "detach"):
        return np.asarray(array.detach().float().cpu().numpy())
    return np.asarray(array)


def figure_first_layer_filters(
    weight: np.ndarray | torch.Tensor, *, title: str = "first-layer filters"
) -> Figure:
    """The first convolution's kernels as an image grid (AlexNet Fig. 3 style)."""
    mosaic = filter_mosaic(weight)
    count, _, height, width = np.shape(weight)
    scale = max(1.0, 48 / max(height, 1))  # small kernels (3x3) get bigger cells
    figure = ReportFigure(
        figsize=(min(14.0, mosaic.shape[1] * scale / 40), min(10.0, mosaic.shape[0] * scale / 40))
    )
    axes = figure.add_axes((0, 0, 1, 0.92))
    axes.imshow(mosaic, interpolation="nearest")
    axes.set_axis_off()
    figure.suptitle(f"{plain(title)}: {count} kernels of {height}x{width}x3", fontsize=10)
    return figure


def spread_over_classes(targets: np.ndarray, is_wrong: np.ndarray) -> list[int]:
    """Sample indices, misclassified first, each part taking one image of every true class in
    turn, so a grid of the first few shows many classes rather than the first one."""
    order: list[int] = []
    for wanted in (True, False):
        by_class: dict[int, list[int]] = {}
        for index in np.flatnonzero(is_wrong == wanted):
            by_class.setdefault(int(targets[index]), []).append(int(index))
        queues = [by_class[label] for label in sorted(by_class)]
        while any(queues):
            order += [queue.pop(0) for queue in queues if queue]
    return order


def figure_sample_grid(samples: Samples, *, max_images: int = 24, columns: int = 6) -> Figure:
    """Test images with predicted and true labels, misclassified first (red), then correct,
    spread over the true classes."""
    predicted = samples.top5_indices[:, 0]
    is_wrong = predicted != samples.targets
    order = np.asarray(spread_over_classes(samples.targets, is_wrong)[:max_images], dtype=int)
    rows = max(1, int(np.ceil(len(order) / columns)))
    figure = ReportFigure(figsize=(columns * 1.9, rows * 2.15), layout="constrained")
    grid = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for axes in grid:
        axes.set_axis_off()
    for axes, index in zip(grid, order, strict=False):
        axes.imshow(samples.images[index], interpolation="nearest")
        wrong = bool(is_wrong[index])
        axes.set_title(
            f"pred: {_name(samples.classes, predicted[index])}\n"
            f"true: {_name(samples.classes, samples.targets[index])}",
            fontsize=8,
            color=WRONG_COLOR if wrong else CORRECT_COLOR,
        )
    wrong_shown = int(is_wrong[order].sum())
    figure.suptitle(
        f"{wrong_shown} of {len(order)} shown are misclassified (red, first); correct in green",
        fontsize=10,
    )
    return figure


def figure_top5(samples: Samples, *, count: int = 3) -> Figure:
    """For a few samples (misclassified first): the image and its top-5 probabilities as bars,
    the true class's bar green when it is among the five."""
    predicted = samples.top5_indices[:, 0]
    order = np.argsort(predicted == samples.targets, kind="stable")[:count]
    figure = ReportFigure(figsize=(8, 1.7 * max(1, len(order))), layout="constrained")
    grid = figure.subplots(max(1, len(order)), 2, squeeze=False, width_ratios=(1, 2.4))
    for (image_axes, bar_axes), index in zip(grid, order, strict=False):
        image_axes.imshow(samples.images[index], interpolation="nearest")
        image_axes.set_axis_off()
        target = int(samples.targets[index])
        image_axes.set_title(f"true: {_name(samples.classes, target)}", fontsize=9)
        indices = samples.top5_indices[index]
        names = [_name(samples.classes, i) for i in indices]
        colors = [CORRECT_COLOR if int(i) == target else "tab:gray" for i in indices]
        bar_axes.barh(range(len(indices)), samples.top5_probs[index], color=colors)
        bar_axes.set_yticks(range(len(indices)), labels=names, fontsize=8)
        bar_axes.invert_yaxis()
        bar_axes.set_xlim(0, 1)
        bar_axes.set_xlabel("probability", fontsize=8)
    return figure


def _name(classes: Sequence[str], index: int | np.integer) -> str:
    return plain(classes[int(index)]) if 0 <= int(index) < len(classes) else f"#{int(index)}"


@dataclass(frozen=True)
class CurveSeries:
    """One line of an overlaid comparison plot: mean over seeds, with its std (0 for one run)."""

    label: str
    epochs: list[int]
    mean: list[float]
    std: list[float]


def figure_compare_curves(
    top1: Sequence[CurveSeries], loss: Sequence[CurveSeries], *, top1_label: str
) -> Figure:
    """Overlaid learning curves of several runs: top-1 (left) and train loss (right); a band
    shows ± one std over seeds where a group has more than one run."""
    figure = ReportFigure(figsize=(11, 4), layout="constrained")
    top1_axes, loss_axes = figure.subplots(1, 2)
    for axes, series_list in ((top1_axes, top1), (loss_axes, loss)):
        for series in series_list:
            if not series.epochs:
                continue
            (line,) = axes.plot(
                series.epochs, series.mean, marker="o", markersize=3, label=plain(series.label)
            )
            if any(s > 0 for s in series.std):
                mean, std = np.asarray(series.mean), np.asarray(series.std)
                axes.fill_between(
                    series.epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2
                )
        axes.grid(alpha=0.3)
        axes.set_xlabel("epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        if axes.get_lines():
            axes.legend()
    top1_axes.set(title=plain(top1_label), ylabel="top-1 (%)")
    loss_axes.set(title="train loss", ylabel="cross-entropy")
    return figure


def figure_per_class_deltas(
    classes: Sequence[str], deltas: Mapping[str, Sequence[float]], *, reference: str
) -> Figure:
    """Grouped horizontal bars: each run's per-class top-1 minus the reference run's, in
    percentage points; classes sorted by the first compared run's delta (worst first)."""
    labels = list(deltas)
    order = np.argsort(np.asarray(deltas[labels[0]], dtype=np.float64), kind="stable")
    height = 0.8 / max(1, len(labels))
    figure = ReportFigure(
        figsize=(7, 0.3 * len(classes) * max(1, len(labels) / 2) + 1.5), layout="constrained"
    )
    axes = figure.subplots()
    for offset, label in enumerate(labels):
        values = np.asarray(deltas[label], dtype=np.float64)[order]
        positions = np.arange(len(order)) + offset * height
        axes.barh(positions, values, height=height, label=plain(label))
    ticks = np.arange(len(order)) + 0.4 - height / 2
    axes.set_yticks(ticks, labels=[plain(classes[i]) for i in order])
    axes.invert_yaxis()
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel(f"per-class top-1 minus {plain(reference)} (percentage points)")
    axes.set_title(f"per-class accuracy change vs {plain(reference)}")
    axes.legend(loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    return figure
