"""Compare runs: `comparison.html` + `comparison.md` with a metrics table (mean ± std over the
seeds of each group), the accuracy gap against the first group, epochs to reach given
validation accuracies, overlaid learning curves and per-class accuracy deltas.

`classicnets compare RUN RUN ...` is the case of one run per group; the ablation runner passes
one group per cell with one run per seed.

Runs whose class sets differ are compared on overall metrics only: per-class deltas are skipped
and the report says which runs and classes differ. Inside one group (seeds of one cell) the
class sets must agree, otherwise a mean per class would mix different classes: UserError.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from classicnets.errors import UserError
from classicnets.report import per_image
from classicnets.report.compare_figures import curves_image, monitor_curves_image, per_class_blocks
from classicnets.report.document import Document, Heading, Notes, Paragraph, Table
from classicnets.report.document import write_document as _write_document
from classicnets.report.groups import MONITOR_KEY, RunGroup, class_difference
from classicnets.report.hyperparameters import config_differences
from classicnets.report.tables import (
    MISSING,
    format_count,
    format_delta,
    format_macs,
    format_mean_std,
    format_number,
    format_seconds,
    mean_std,
)
from classicnets.run_record import RunFolder, load_run

log = logging.getLogger(__name__)

COMPARISON_STEM = "comparison"


def _best_val_top1(run: RunFolder) -> float | None:
    return run.best_val_top1()[0]


def _params(run: RunFolder) -> float | None:
    return run.summary.params


def _macs(run: RunFolder) -> float | None:
    return run.summary.macs


def write_comparison(
    run_groups: Sequence[tuple[str, Sequence[Path]]],
    out_dir: Path,
    at: Sequence[float] = (),
    *,
    overwrite: bool = False,
) -> Path:
    """Write the comparison of `run_groups` (label, run dirs over seeds) into out_dir.

    If out_dir already holds a comparison and `overwrite` is false, the new one is written
    beside it as comparison-2.html (-3, ...) so no earlier result is lost. Returns the HTML path.
    """
    groups = load_groups(run_groups)
    document = build_comparison_document(groups, list(at))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a folder")
    stem = COMPARISON_STEM if overwrite else free_stem(out_dir, COMPARISON_STEM)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_name = f"{stem}_per_image.csv"
    pairs = [(group.label, group.runs) for group in groups]
    if per_image.write_per_image_csv(pairs, out_dir / csv_name):
        document.blocks.append(
            Paragraph(f"Every test image with each run's prediction: {csv_name}")
        )
    return _write_document(document, out_dir, stem)


def free_stem(out_dir: Path, stem: str) -> str:
    """`stem`, or `stem-2`, `stem-3`, ... : the first whose HTML, Markdown and files are new."""
    candidate, number = stem, 1
    while any(
        (out_dir / name).exists()
        for name in (f"{candidate}.html", f"{candidate}.md", f"{candidate}_files")
    ):
        number += 1
        candidate = f"{stem}-{number}"
    return candidate


def load_groups(run_groups: Sequence[tuple[str, Sequence[Path]]]) -> list[RunGroup]:
    if not run_groups:
        raise UserError("nothing to compare: give at least one run folder")
    labels = [label for label, _ in run_groups]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise UserError(f"comparison labels must be unique; repeated: {', '.join(duplicates)}")
    groups = []
    for label, paths in run_groups:
        if not paths:
            raise UserError(f"comparison group {label!r} has no run folders")
        runs = [load_run(Path(p)) for p in paths]
        _check_same_classes(label, runs)
        groups.append(RunGroup(label, runs))
    return groups


def _check_same_classes(label: str, runs: list[RunFolder]) -> None:
    named = [run for run in runs if run.classes]
    for run in named[1:]:
        difference = class_difference(named[0], run)
        if difference:
            raise UserError(
                f"group {label!r}: runs {named[0].path} and {run.path} have "
                f"different classes ({difference}); seeds of one cell must agree"
            )


def build_comparison_document(groups: list[RunGroup], at: list[float]) -> Document:
    document = Document(title="Comparison: " + " vs ".join(g.label for g in groups))
    notes = _run_notes(groups)
    blocks = document.blocks
    runs = [(group.label, run) for group in groups for run in group.runs]
    blocks.append(Heading("Config differences"))
    blocks.append(config_differences([label for label, _ in runs], [r.config for _, r in runs]))
    blocks.append(Heading("Runs"))
    blocks.append(_runs_table(groups))
    blocks.append(Heading("Metrics"))
    blocks.append(
        Paragraph(
            "Mean ± sample std over the runs of each row (n runs); "
            "(n=k) marks a mean over fewer runs, where the others lack the value."
        )
    )
    blocks.append(_metrics_table(groups))
    blocks.append(Heading(f"Against {groups[0].label}"))
    blocks.append(_gap_table(groups, at))
    blocks.append(Heading("Learning curves"))
    blocks.append(curves_image(groups))
    if any(run.metric_series(MONITOR_KEY)[0] for g in groups for run in g.runs):
        blocks.append(monitor_curves_image(groups))
    blocks.append(Heading("Test images, run by run"))
    blocks.append(per_image.outcome_table([(group.label, group.runs) for group in groups]))
    blocks.append(Heading(f"Per-class test top-1 change vs {groups[0].label}"))
    blocks.extend(per_class_blocks(groups, notes))
    if notes:
        blocks.insert(0, Notes("Read before comparing", notes))
    return document


def _run_notes(groups: list[RunGroup]) -> list[str]:
    notes = []
    for group in groups:
        for run in group.runs:
            name = group.label if group.label == run.run_id else f"{group.label} ({run.run_id})"
            notes += [f"{name}: {w}" for w in run.warnings]
    return notes


def _runs_table(groups: list[RunGroup]) -> Table:
    rows = []
    for group in groups:
        for run in group.runs:
            rows.append(
                [
                    group.label,
                    run.run_id,
                    run.model_name,
                    run.dataset_name,
                    run.status,
                    str(run.seed() if run.seed() is not None else MISSING),
                ]
            )
    return Table(["label", "run", "model", "dataset", "status", "seed"], rows, table_id="runs")


def _metrics_table(groups: list[RunGroup]) -> Table:
    headers = [
        "label",
        "n",
        "model",
        "params",
        "MACs",
        "best val top-1 (%)",
        "last val top-1 (%)",
        "test top-1 (%)",
        "test top-5 (%)",
        "test correct",
        "test incorrect",
        "epochs",
        "wall time",
        "images/s",
    ]
    rows = []
    for group in groups:
        n = len(group.runs)
        rows.append(
            [
                group.label,
                str(n),
                _distinct(run.model_name for run in group.runs),
                _distinct(format_count(v) for v in group.values(_params)),
                _distinct(format_macs(v) for v in group.values(_macs)),
                format_mean_std(group.values(_best_val_top1), n),
                format_mean_std(group.values(RunFolder.last_val_top1), n),
                format_mean_std(group.values(RunFolder.test_top1), n),
                format_mean_std(group.values(RunFolder.test_top5), n),
                format_mean_std(_eval_counts(group, "correct"), n, 1, count=True),
                format_mean_std(_eval_counts(group, "incorrect"), n, 1, count=True),
                format_mean_std([float(len(run.epochs)) for run in group.runs], n, 1, count=True),
                _seconds_mean_std(group.values(RunFolder.wall_seconds), n),
                format_mean_std(group.values(RunFolder.images_per_second), n, 1),
            ]
        )
    return Table(headers, rows, table_id="comparison")


def _distinct(values: Iterable[object]) -> str:
    """The value shared by all runs, or each distinct value once: "vgg16 / vgg16_bn"."""
    return " / ".join(dict.fromkeys(str(v) for v in values))


def _eval_counts(group: RunGroup, key: Literal["correct", "incorrect"]) -> list[float | None]:
    out: list[float | None] = []
    for run in group.runs:
        test = run.test_eval
        value = getattr(test.metrics, key) if test is not None else None
        out.append(float(value) if value is not None else None)
    return out


def _seconds_mean_std(values: list[float | None], total: int) -> str:
    mean, std, present = mean_std(values)
    if mean is None:
        return MISSING
    text = format_seconds(mean) + (f" ± {format_seconds(std)}" if std is not None else "")
    return text + (f" (n={present})" if present < total else "")


def epochs_to_reach(run: RunFolder, threshold: float, key: str = "val_top1") -> int | None:
    """The first epoch whose `key` (val top-1) is at least `threshold` percent, or None."""
    return run.first_epoch_reaching(key, threshold)


def _epochs_to_reach_cell(group: RunGroup, threshold: float, key: str = "val_top1") -> str:
    has_val = [run for run in group.runs if run.metric_series(key)[0]]
    if not has_val:
        return MISSING
    reached = [epochs_to_reach(run, threshold, key) for run in has_val]
    hits = [float(e) for e in reached if e is not None]
    if not hits:
        # An unfinished run may still get there.
        return "never" if all(run.is_complete for run in has_val) else "not yet"
    mean, std, _ = mean_std(hits)
    text = format_number(mean, 1 if len(hits) > 1 else 0)
    if std is not None:
        text += f" ± {format_number(std, 1)}"
    if len(hits) < len(group.runs):
        text += f" ({len(hits)}/{len(group.runs)} reached)"
    return text


def _gap_table(groups: list[RunGroup], at: list[float]) -> Table:
    reference = groups[0]
    headers = ["label", "Δ test top-1 (pp)", "Δ best val top-1 (pp)"]
    headers += [f"epochs to {_format_threshold(x)}% val top-1" for x in at]
    monitored = any(run.metric_series(MONITOR_KEY)[0] for g in groups for run in g.runs)
    if monitored:  # test-set monitoring: reported as such, never used to select anything
        headers += [f"epochs to {_format_threshold(x)}% test top-1 (monitoring)" for x in at]
    rows = []
    for index, group in enumerate(groups):
        deltas = []
        for read in (RunFolder.test_top1, _best_val_top1):
            mine, _, _ = mean_std(group.values(read))
            theirs, _, _ = mean_std(reference.values(read))
            if index == 0:
                deltas.append("reference" if mine is not None else MISSING)
            else:
                deltas.append(
                    format_delta(None if mine is None or theirs is None else mine - theirs)
                )
        cells = [_epochs_to_reach_cell(group, x) for x in at]
        if monitored:
            cells += [_epochs_to_reach_cell(group, x, MONITOR_KEY) for x in at]
        rows.append([group.label, *deltas, *cells])
    return Table(headers, rows, table_id="gap")


def _format_threshold(value: float) -> str:
    return f"{value:g}"
