"""The ablation runner: a grid of config changes x seeds, one run folder per cell and seed.

Re-running the same command skips finished cells, resumes interrupted ones and refuses to mix
in a cell whose saved config differs, so an ablation survives being stopped at any point.
"""

import itertools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from classicnets.config import (
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    read_yaml,
)
from classicnets.errors import UserError
from classicnets.report import write_comparison, write_run_report
from classicnets.train.loop import fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """One point of the grid: the `key=value` overrides that define it, and its label."""

    overrides: tuple[str, ...]
    label: str

    @property
    def folder(self) -> str:
        text = "__".join(o.replace("=", "-") for o in self.overrides) or "base"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def parse_vary(specs: Sequence[str]) -> list[Cell]:
    """`--vary model.norm=bn,none --vary model.dropout=0,0.5` -> the 4 cells of the product."""
    axes: list[list[str]] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise UserError(f"--vary expects KEY=V1,V2,... (e.g. model.norm=bn,none); got {spec!r}")
        axes.append([f"{key.strip()}={choice}" for choice in choices])
    return [Cell(tuple(combo), ", ".join(combo)) for combo in itertools.product(*axes)]


def cell_run_name(cell: Cell, seed: int) -> str:
    """Where one cell x seed lives inside the grid folder: `<cell folder>/seed-<seed>`."""
    return f"{cell.folder}/seed-{seed}"


def cell_config(base: RunConfig, cell: Cell, seed: int) -> RunConfig:
    tree = apply_overrides(config_to_dict(base), [*cell.overrides, f"train.seed={seed}"])
    return config_from_dict(tree)


def run_cell(config: RunConfig, out_dir: Path, run_name: str) -> Path:
    """Train one cell x seed into out_dir/run_name: skip if done, resume if interrupted."""
    run_dir = out_dir / run_name
    summary = run_dir / "summary.json"
    if (run_dir / "config.yaml").is_file():
        saved = config_from_dict(read_yaml(run_dir / "config.yaml"))
        if saved != config:
            raise UserError(
                f"{run_dir} holds this cell with a different config; "
                "choose another --out or delete that folder"
            )
        if summary.is_file() and json.loads(summary.read_text()).get("status") == "complete":
            log.info("skip %s (finished)", run_dir)
            return run_dir
        if (run_dir / "checkpoints").is_dir():
            log.info("resume %s", run_dir)
            return _finish(fit(config, resume=run_dir))
        raise UserError(f"{run_dir} was started but has no checkpoint; delete it to rerun")
    return _finish(fit(config, out_dir, run_name=run_name))


def _finish(run_dir: Path) -> Path:
    """Report the run; a run stopped by Ctrl-C stops the whole grid (rerun to continue)."""
    write_run_report(run_dir)
    if json.loads((run_dir / "summary.json").read_text()).get("status") != "complete":
        raise KeyboardInterrupt
    return run_dir


def run_ablation(
    base: RunConfig,
    cells: Sequence[Cell],
    seeds: int,
    out_dir: Path,
    at: Sequence[float] = (),
) -> Path:
    """Run every cell x seed (first seed = base.train.seed) and write the comparison."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1; got {seeds}")
    configs = [
        [cell_config(base, cell, base.train.seed + k) for k in range(seeds)] for cell in cells
    ]  # built first, so a bad --vary fails before any training
    groups: list[tuple[str, list[Path]]] = []
    for cell, cell_configs in zip(cells, configs, strict=True):
        runs = [
            run_cell(config, out_dir, cell_run_name(cell, config.train.seed))
            for config in cell_configs
        ]
        groups.append((cell.label, runs))
    return write_comparison(groups, out_dir, at, overwrite=True)
