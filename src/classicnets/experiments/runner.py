"""`classicnets experiment NAME`: run an experiment's grids with the ablation runner, then
write the claims report (claims.html, claims.md, claims.json) beside their comparisons.

Every cell's config is built and checked before the first run starts, so a bad --set fails at
once; re-running the same command skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from classicnets.config import RunConfig, load_config, override_keys
from classicnets.errors import UserError
from classicnets.experiments.ablate import cell_config, cell_run_name, run_ablation
from classicnets.experiments.catalog import BUDGETS, Budget, Experiment, Grid, get_experiment
from classicnets.experiments.claims_report import GridResult, write_claims_report
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


def plan_experiment(
    experiment: Experiment, budget: Budget, seeds: int | None, overrides: Sequence[str]
) -> list[GridPlan]:
    """Each grid's base config (preset < budget overrides < --set) with every cell checked."""
    if budget not in BUDGETS:
        raise UserError(f"--budget must be one of {', '.join(BUDGETS)}; got {budget!r}")
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be at least 1; got {seeds}")
    plans = []
    for grid in experiment.grids:
        recipe = grid.recipe(budget)
        base = load_config(recipe.preset, [*recipe.overrides, *overrides])
        varied = {key for cell in grid.cells for key in override_keys(cell.overrides)}
        for key in sorted(varied & set(override_keys(overrides))):
            log.warning("--set %s: the experiment varies %s; each cell's own value wins", key, key)
        plan = GridPlan(grid, base, seeds if seeds is not None else recipe.seeds)
        for cell in grid.cells:
            check_names(cell_config(base, cell, base.train.seed))
        plans.append(plan)
    return plans


def run_experiment(
    name: str,
    budget: Budget,
    out_dir: Path,
    seeds: int | None = None,
    overrides: Sequence[str] = (),
) -> Path:
    """Run experiment `name` on `budget` into out_dir; return the claims report (HTML)."""
    experiment = get_experiment(name)
    plans = plan_experiment(experiment, budget, seeds, overrides)
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
