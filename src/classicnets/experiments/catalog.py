"""The types of the experiment table and its registry: an experiment is a few small grids on
top of the ablation runner, each with a `quick` budget (a CIFAR-10 subset, minutes on 2 CPU
cores), a `paper` budget (the full protocol, for a GPU) and, where a claim can be decided on
a CPU in a few hours, a `cpu` budget (full CIFAR-10, 3 seeds, decisive verdicts), and the
claims its results are held to. The tables themselves are in alexnet_claims.py and
vgg_claims.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from classicnets.errors import UserError
from classicnets.experiments.ablate import Cell
from classicnets.experiments.measures import Expectation, Metric
from classicnets.registry import Registry

Budget = Literal["quick", "paper", "cpu"]
BUDGETS: tuple[Budget, ...] = ("quick", "paper", "cpu")


@dataclass(frozen=True)
class Recipe:
    """A grid's base config for one budget: a preset, overrides on it, and the default seeds.

    `shortcuts` lists every way the budget departs from the paper's protocol; the claims report
    prints them, so a quick result is never read as the paper's.
    """

    preset: str
    overrides: tuple[str, ...]
    seeds: int
    shortcuts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    """One claim, held to two cells of a grid: `first` beats `second`, or gives no gain."""

    statement: str
    source: str
    metric: Metric
    first: str  # a cell label of the grid
    second: str
    paper: str  # the paper's numbers, as printed beside the measured ones
    expect: Expectation = "first_better"
    tolerance: float = 0.0  # no_gain: how much better `first` may be and still count as none
    show_ratio: bool = False  # epochs claims: show second / first ("6x faster")
    scope: str = ""  # where the paper measured it, when that is not where we measure
    # The quick budget's own measure, when the paper's is out of its reach (e.g. a lower
    # accuracy threshold); the claims report names the measure it used.
    quick_metric: Metric | None = None
    # The cpu budget's decisive rule (measures.DECISIVE_RULE): the smallest effect that counts
    # as the claim holding, in the metric's unit (a factor for show_ratio claims); fixed
    # before the runs, half the paper's effect.
    decisive: float | None = None

    def metric_for(self, budget: Budget) -> Metric:
        if budget == "quick" and self.quick_metric is not None:
            return self.quick_metric
        return self.metric


@dataclass(frozen=True)
class Grid:
    """One ablation grid (one comparison report) inside an experiment."""

    name: str  # the grid's folder inside the experiment folder
    cells: tuple[Cell, ...]
    quick: Recipe
    paper: Recipe
    claims: tuple[Claim, ...]
    cpu: Recipe | None = None

    def recipe(self, budget: Budget) -> Recipe:
        if budget == "cpu":
            if self.cpu is None:
                raise UserError(f"grid {self.name} has no cpu budget")
            return self.cpu
        return self.quick if budget == "quick" else self.paper


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    grids: tuple[Grid, ...]


EXPERIMENTS: Registry[Experiment] = Registry("experiment")

# Quick budgets: real CIFAR-10, a class-balanced subset of the training split (limit_per_class),
# 500 val images, the full 10,000-image test split; all six together took 28 minutes on 2
# quiet CPU cores (docs/experiments.md). The claims report states each grid's resolved subset,
# epochs, batch and lr.
QUICK_DATA = ("data.val_fraction=0.01",)  # 500 val images
# Small subsets give few steps per epoch: smaller batches (convnet4 also a doubled lr) give
# the nets enough steps to learn in a few epochs.
CONVNET4_QUICK = ("train.batch_size=64", "optim.lr=0.02")
DEEP_QUICK = ("train.batch_size=32",)


def quick_recipe(
    preset: str, per_class: int, epochs: int, seeds: int, *extra: str, notes: tuple[str, ...] = ()
) -> Recipe:
    overrides = (*QUICK_DATA, f"data.limit_per_class={per_class}", f"train.epochs={epochs}", *extra)
    return Recipe(preset, overrides, seeds, notes)


def register_experiment(experiment: Experiment) -> None:
    EXPERIMENTS.register(experiment.name)(experiment)


def experiment_names() -> list[str]:
    return EXPERIMENTS.names()


def get_experiment(name: str) -> Experiment:
    """The experiment `name`; an unknown name raises UserError listing the experiments."""
    return EXPERIMENTS.get(name)
