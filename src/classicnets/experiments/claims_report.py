"""The claims report of an experiment: each paper claim beside the measured value (mean ± std
over seeds), whether it held, and the setting it was measured in (subset, epochs, shortcuts).

Written as claims.html + claims.md (via classicnets.report.document) and claims.json, in the
experiment folder next to each grid's folder with its comparison report.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classicnets.atomic import atomic_write_text
from classicnets.config import RunConfig
from classicnets.experiments.catalog import Budget, Claim, Experiment, Grid
from classicnets.experiments.measures import (
    DECISIVE_RULE,
    VERDICT_RULE,
    CellStats,
    Judgement,
    Metric,
    cell_stats,
    judge,
    judge_decisive,
    ratio_text,
)
from classicnets.report.document import Document, Heading, Notes, Paragraph, Table, write_document
from classicnets.report.tables import format_mean_std, format_seconds
from classicnets.run_record import Environment, RunFolder, load_run

CLAIMS_STEM = "claims"


@dataclass(frozen=True)
class GridResult:
    grid: Grid
    base: RunConfig
    seeds: int
    comparison: Path  # the grid's comparison.html
    run_dirs: list[tuple[str, list[Path]]]  # (cell label, run folders over seeds)


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    metric: Metric  # the claim's measure in this budget
    first: CellStats
    second: CellStats
    judgement: Judgement

    @property
    def measured(self) -> str:
        text = f"{self.first.label}: {self.first.text()} vs {self.second.label}: "
        text += f"{self.second.text()} ({self.metric.unit})"
        if self.claim.show_ratio:
            text += f"; {self.second.label} / {self.first.label} = "
            text += ratio_text(self.first, self.second)
        return text


@dataclass(frozen=True)
class GridReport:
    """A grid's result with its run folders read once, and its claims judged."""

    result: GridResult
    runs: dict[str, list[RunFolder]]  # cell label -> runs over seeds
    claims: list[ClaimResult]

    @classmethod
    def read(cls, result: GridResult, budget: Budget) -> GridReport:
        runs = {label: [load_run(path) for path in paths] for label, paths in result.run_dirs}
        claims = []
        for claim in result.grid.claims:
            metric = claim.metric_for(budget)
            first = cell_stats(metric, claim.first, runs[claim.first])
            second = cell_stats(metric, claim.second, runs[claim.second])
            if budget == "cpu" and claim.decisive is not None:
                judgement = judge_decisive(
                    metric, first, second, claim.decisive, ratio=claim.show_ratio
                )
            else:
                judgement = judge(metric, first, second, claim.expect, claim.tolerance)
            claims.append(ClaimResult(claim, metric, first, second, judgement))
        return cls(result, runs, claims)

    @property
    def all_runs(self) -> list[RunFolder]:
        return [run for runs in self.runs.values() for run in runs]

    def setting(self) -> str:
        """One line on what the grid trained: model, data subset, epochs, optimiser, seeds."""
        config = self.result.base
        data, optim = config.data, config.optim
        classes = next((r.summary.num_classes for r in self.all_runs if r.summary.num_classes), 0)
        subset = "the full training split"
        if data.limit_per_class:
            total = f" (≤ {data.limit_per_class * classes:,} images)" if classes else ""
            subset = f"at most {data.limit_per_class} training images per class{total}"
        if data.limit:
            subset += f", at most {data.limit:,} in all"
        varied = {o.partition("=")[0] for cell in self.result.grid.cells for o in cell.overrides}
        models = [
            run.model_name for runs in self.runs.values() for run in runs[:1] if run.has_summary
        ]
        model = ", ".join(dict.fromkeys(models)) or config.model.name
        knobs = [
            f"{knob}={getattr(config.model, knob)}"
            for knob in ("norm", "activation", "overlap_pool", "dropout", "init")
            if getattr(config.model, knob) is not None and f"model.{knob}" not in varied
        ]
        if knobs:
            model += f" ({', '.join(knobs)} for every cell)"
        return (
            f"{model} on {data.name}: {subset}, val_fraction {data.val_fraction:g}, "
            f"epochs {config.train.epochs}, batch {config.train.batch_size}, {optim.name} "
            f"lr {optim.lr:g}, schedule {config.schedule.name}, augment {data.augment}; "
            f"{self.result.seeds} seed(s) per cell"
        )


def write_claims_report(
    experiment: Experiment,
    budget: Budget,
    results: Sequence[GridResult],
    out_dir: Path,
    elapsed_seconds: float,
) -> Path:
    """Write claims.html, claims.md and claims.json into out_dir; return the HTML path."""
    grids = [GridReport.read(result, budget) for result in results]
    runs = [run for grid in grids for run in grid.all_runs]
    today = datetime.date.today().isoformat()
    hardware = _hardware(runs)
    train_seconds = sum(run.wall_seconds() or 0.0 for run in runs)
    document = Document(title=f"Claims: {experiment.title}")
    blocks = document.blocks
    skipped = [g.name for g in experiment.grids if g.name not in {r.grid.name for r in results}]
    if skipped:
        blocks.append(
            Notes("Part of the experiment", [f"not run here (--grid): {', '.join(skipped)}"])
        )
    blocks.append(
        Paragraph(
            f"Experiment {experiment.name}, budget {budget}, measured {today} on {hardware}. "
            f"Training time {format_seconds(train_seconds)} over {len(runs)} runs "
            f"(this invocation took {format_seconds(elapsed_seconds)}; finished runs are "
            f"skipped when a command is repeated)."
        )
    )
    notes = [f"{grid.result.grid.name}: {grid.setting()}" for grid in grids]
    notes += [
        f"{grid.result.grid.name}: {shortcut}"
        for grid in grids
        for shortcut in grid.result.grid.recipe(budget).shortcuts
    ]
    notes += [
        f"{grid.result.grid.name}: measured as {c.metric.name}; the paper's measure is "
        f"{c.claim.metric.name}"
        for grid in grids
        for c in grid.claims
        if c.metric != c.claim.metric
    ]
    title = "Quick budget: a subset and few epochs, not the paper's protocol"
    blocks.append(Notes(title if budget == "quick" else "Setting", notes))
    blocks.append(Heading("Claims"))
    blocks.append(_claims_table([claim for grid in grids for claim in grid.claims]))
    blocks.append(Heading("Grids"))
    for grid in grids:
        blocks.append(Heading(grid.result.grid.name, level=3))
        comparison = _relative(grid.result.comparison, out_dir)
        blocks.append(Paragraph(f"{grid.setting()}. Comparison report: {comparison}"))
        blocks.append(_cells_table(grid))
    blocks.append(Heading("How verdicts are decided"))
    blocks.append(Paragraph(DECISIVE_RULE if budget == "cpu" else VERDICT_RULE))
    html = write_document(document, out_dir, CLAIMS_STEM)
    payload = {
        "experiment": experiment.name,
        "title": experiment.title,
        "budget": budget,
        "date": today,
        "hardware": hardware,
        "grids_not_run": skipped,
        "train_seconds": round(train_seconds, 1),
        "elapsed_seconds": round(elapsed_seconds, 1),
        "grids": [_grid_json(grid, budget) for grid in grids],
    }
    atomic_write_text(out_dir / f"{CLAIMS_STEM}.json", json.dumps(payload, indent=1) + "\n")
    return html


def _hardware(runs: Sequence[RunFolder]) -> str:
    env = next((run.env for run in runs if run.env is not None), Environment())
    known = [name for name in (env.device_name, env.device) if name != "?"]
    device = known[0] if known else "unknown device"
    return f"{device} ({os.cpu_count()} CPU cores visible), torch {env.torch}"


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def _claims_table(claims: Sequence[ClaimResult]) -> Table:
    rows = []
    for result in claims:
        claim = result.claim
        paper = claim.paper + (f" [{claim.scope}]" if claim.scope else "")
        rows.append(
            [
                f"{claim.statement} ({claim.source})",
                paper,
                f"{result.metric.name}: {result.measured}",
                result.judgement.verdict,
                result.judgement.reason,
            ]
        )
    return Table(["claim", "paper", "measured", "verdict", "why"], rows, table_id="claims")


def _cells_table(grid: GridReport) -> Table:
    rows = []
    for label, runs in grid.runs.items():
        rows.append(
            [
                label,
                f"{sum(run.is_complete for run in runs)}/{len(runs)}",
                format_mean_std([run.test_top1() for run in runs], len(runs)),
                format_mean_std([run.best_val_top1()[0] for run in runs], len(runs)),
                format_seconds(sum(run.wall_seconds() or 0.0 for run in runs)),
            ]
        )
    headers = ["cell", "finished", "test top-1 (%)", "best val top-1 (%)", "training time"]
    return Table(headers, rows, table_id=f"cells-{grid.result.grid.name}")


def _stats_json(stats: CellStats) -> dict[str, Any]:
    return {
        "label": stats.label,
        "mean": stats.mean,
        "std": stats.std,
        "n": stats.count,
        "runs": stats.runs,
        "values": [reading.value for reading in stats.readings],
        "not_reached": stats.censored,
    }


def _grid_json(grid: GridReport, budget: Budget) -> dict[str, Any]:
    result = grid.result
    return {
        "grid": result.grid.name,
        "setting": grid.setting(),
        "seeds": result.seeds,
        "comparison": str(result.comparison),
        "shortcuts": list(result.grid.recipe(budget).shortcuts),
        "cells": {
            label: {
                "runs": [str(run.path) for run in runs],
                "test_top1": [run.test_top1() for run in runs],
                "wall_seconds": [run.wall_seconds() for run in runs],
            }
            for label, runs in grid.runs.items()
        },
        "claims": [
            {
                "statement": c.claim.statement,
                "source": c.claim.source,
                "paper": c.claim.paper,
                "scope": c.claim.scope,
                "metric": c.metric.name,
                "paper_metric": c.claim.metric.name,
                "unit": c.metric.unit,
                "expect": c.claim.expect,
                "first": _stats_json(c.first),
                "second": _stats_json(c.second),
                "measured": c.measured,
                "effect": c.judgement.effect,
                "noise": c.judgement.noise,
                "verdict": c.judgement.verdict,
                "reason": c.judgement.reason,
            }
            for c in grid.claims
        ],
    }
