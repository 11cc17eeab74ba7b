"""`classicnets experiment NAME`: run an experiment's grids with the ablation runner, then
write the claims report (claims.html, claims.md, claims.json) beside their comparisons.

Every cell's config is built and checked before the first run starts, so a bad --set fails at
once; re-running the same command skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from classicnets.config import RunConfig, load_config, override_keys
from classicnets.errors import UserError
from classicnets.experiments.ablate import cell_config, cell_run_name, run_ablation
from classicnets.experiments.catalog import (
    BUDGETS,
    Budget,
    Experiment,
    Grid,
    experiment_names,
    get_experiment,
)
from classicnets.experiments.claims_report import GridResult, write_claims_report
from classicnets.models import MODELS
from classicnets.train.setup import check_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridPlan:
    grid: Grid
    base: RunConfig
    seeds: int

    def run_dirs(self, grid_dir: Path) -> list[tuple[str, list[Path]]]:
        """(cell label, run folders over seeds), as the ablation runner lays them out."""
        first = self.base.train.seed
        return [
            (cell.label, [grid_dir / cell_run_name(cell, first + k) for k in range(self.seeds)])
            for cell in self.grid.cells
        ]


def select_grids(experiment: Experiment, names: Sequence[str]) -> list[Grid]:
    """The grids named (all when none are), in the experiment's order."""
    known = [grid.name for grid in experiment.grids]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UserError(
            f"experiment {experiment.name} has no grid {unknown[0]!r}; grids: {', '.join(known)}"
        )
    return [grid for grid in experiment.grids if not names or grid.name in names]


def plan_experiment(
    experiment: Experiment,
    budget: Budget,
    seeds: int | None,
    overrides: Sequence[str],
    grids: Sequence[str] = (),
) -> list[GridPlan]:
    """Each grid's base config (preset < budget overrides < --set) with every cell checked."""
    if budget not in BUDGETS:
        raise UserError(f"--budget must be one of {', '.join(BUDGETS)}; got {budget!r}")
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be at least 1; got {seeds}")
    chosen = select_grids(experiment, grids)
    if budget == "cpu":
        chosen = [grid for grid in chosen if grid.cpu is not None]
        if not chosen:
            with_cpu = [e.name for e in map(get_experiment, experiment_names()) if _has_cpu(e)]
            raise UserError(
                f"experiment {experiment.name} has no cpu budget"
                + (" for these grids" if grids else "")
                + f"; experiments with one: {', '.join(with_cpu)}"
            )
    plans = []
    for grid in chosen:
        recipe = grid.recipe(budget)
        base = load_config(recipe.preset, [*recipe.overrides, *overrides])
        varied = {key for cell in grid.cells for key in override_keys(cell.overrides)}
        for key in sorted(varied & set(override_keys(overrides))):
            log.warning("--set %s: the experiment varies %s; each cell's own value wins", key, key)
        plan = GridPlan(grid, base, seeds if seeds is not None else recipe.seeds)
        configs = [cell_config(base, cell, base.train.seed) for cell in grid.cells]
        for cell, config in zip(grid.cells, configs, strict=True):
            check_names(config)
            check_model_knobs(config, [*recipe.overrides, *cell.overrides], cell.label)
        check_cells_differ(grid, configs)
        plans.append(plan)
    return plans


def _has_cpu(experiment: Experiment) -> bool:
    return any(grid.cpu is not None for grid in experiment.grids)


def check_model_knobs(config: RunConfig, overrides: Sequence[str], label: str) -> None:
    """Refuse a `model.<knob>=value` that resolved to unset (None) while the model's own
    default is another value: the cell would silently not be what its label says."""
    builder = inspect.signature(MODELS.get(config.model.name)).parameters
    for override in overrides:
        key, _, raw = override.partition("=")
        section, _, knob = key.strip().partition(".")
        if section != "model" or getattr(config.model, knob, "") is not None:
            continue
        default = builder[knob].default if knob in builder else None
        if str(default).lower() != raw.strip().lower():
            raise UserError(
                f"cell {label!r}: {key}={raw} resolves to unset, so {config.model.name} keeps "
                f"its default {knob}={default!r}; the cell would not be what it says"
            )


def check_cells_differ(grid: Grid, configs: Sequence[RunConfig]) -> None:
    """Two cells with one resolved config would compare a run with itself."""
    for i, first in enumerate(configs):
        for j in range(i + 1, len(configs)):
            if configs[j] == first:
                raise UserError(
                    f"grid {grid.name}: cells {grid.cells[i].label!r} and "
                    f"{grid.cells[j].label!r} resolve to the same config"
                )


def run_experiment(
    name: str,
    budget: Budget,
    out_dir: Path,
    seeds: int | None = None,
    overrides: Sequence[str] = (),
    grids: Sequence[str] = (),
) -> Path:
    """Run experiment `name` (only `grids`, if given) on `budget` into out_dir; return the
    claims report (HTML)."""
    experiment = get_experiment(name)
    plans = plan_experiment(experiment, budget, seeds, overrides, grids)
    started = time.perf_counter()
    results = []
    for plan in plans:
        grid_dir = out_dir / plan.grid.name
        log.info(
            "experiment %s, grid %s: %d cells x %d seeds into %s",
            name,
            plan.grid.name,
            len(plan.grid.cells),
            plan.seeds,
            grid_dir,
        )
        comparison = run_ablation(plan.base, plan.grid.cells, plan.seeds, grid_dir)
        results.append(
            GridResult(plan.grid, plan.base, plan.seeds, comparison, plan.run_dirs(grid_dir))
        )
    elapsed = time.perf_counter() - started
    return write_claims_report(experiment, budget, results, out_dir, elapsed)
