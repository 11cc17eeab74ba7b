"""The papers' claims as runnable experiments: a typed table of small grids on top of the
ablation runner, each with a `quick` budget (a CIFAR-10 subset, minutes on 2 CPU cores) and a
`paper` budget (the full protocol, for a GPU), and the claims the grid's results are held to.

Papers: Krizhevsky, Sutskever & Hinton 2012 (AlexNet, NIPS); Simonyan & Zisserman 2014
(VGG, arXiv:1409.1556). The batch-norm numbers come from a published student run of VGG-16 on
CIFAR-10 (the recipe in configs/vgg16_cifar10.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from classicnets.experiments.ablate import Cell
from classicnets.experiments.measures import (
    GENERALIZATION_GAP,
    TEST_ERROR,
    TEST_TOP5_ERROR,
    Expectation,
    Metric,
    epochs_to,
)
from classicnets.registry import Registry

Budget = Literal["quick", "paper"]
BUDGETS: tuple[Budget, ...] = ("quick", "paper")


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

    def recipe(self, budget: Budget) -> Recipe:
        return self.quick if budget == "quick" else self.paper


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    grids: tuple[Grid, ...]


EXPERIMENTS: Registry[Experiment] = Registry("experiment")

# Quick budgets: real CIFAR-10, a class-balanced subset of the training split (limit_per_class),
# 1,000 val images (val_fraction 0.02), the full 10,000-image test split. Sized so that all six
# quick experiments together take about half an hour on 2 shared CPU cores.
# The claims report states the resolved subset, epochs, batch and lr of every grid.
QUICK_DATA = ("data.val_fraction=0.01",)  # 500 val images
# Small subsets give few steps per epoch: smaller batches (convnet4 also a doubled lr) give
# the nets enough steps to learn in a few epochs.
CONVNET4_QUICK = ("train.batch_size=64", "optim.lr=0.02")
DEEP_QUICK = ("train.batch_size=32",)


def _quick(
    preset: str, per_class: int, epochs: int, seeds: int, *extra: str, notes: tuple[str, ...] = ()
) -> Recipe:
    overrides = (*QUICK_DATA, f"data.limit_per_class={per_class}", f"train.epochs={epochs}", *extra)
    return Recipe(preset, overrides, seeds, notes)


def _register(experiment: Experiment) -> None:
    EXPERIMENTS.register(experiment.name)(experiment)


# AlexNet §3.1, Fig. 1: "no regularization of any kind"; learning rates were tuned per net.
_RELU_SAME_LR = "one learning rate for both nets; the paper tuned each net's own"
_RELU_LRN = (
    "the net keeps its LRN (the §3.3 four-layer net); Fig. 1 does not say whether its nets "
    "had it. No weight decay, dropout or augmentation"
)
_register(
    Experiment(
        name="relu-vs-tanh",
        title="ReLU vs tanh: epochs to 25% training error (AlexNet §3.1, Fig. 1)",
        grids=(
            Grid(
                name="activation",
                cells=(
                    Cell(("model.activation=relu",), "ReLU"),
                    Cell(("model.activation=tanh",), "tanh"),
                ),
                quick=_quick(
                    "exp_convnet4_cifar10",
                    500,
                    8,
                    2,
                    *CONVNET4_QUICK,
                    "data.augment=none",
                    "optim.weight_decay=0",
                    "schedule.name=constant",
                    notes=(_RELU_SAME_LR, _RELU_LRN),
                ),
                paper=Recipe(
                    "exp_convnet4_cifar10",
                    (
                        "data.augment=none",
                        "optim.weight_decay=0",
                        "schedule.name=constant",
                        "train.epochs=40",
                    ),
                    3,
                    (_RELU_SAME_LR, _RELU_LRN),
                ),
                claims=(
                    Claim(
                        statement="A four-layer CNN with ReLUs reaches 25% training error on "
                        "CIFAR-10 six times faster than the same net with tanh units",
                        source="AlexNet §3.1, Fig. 1",
                        metric=epochs_to("train_top1", 75.0),
                        quick_metric=epochs_to("train_top1", 60.0),
                        first="ReLU",
                        second="tanh",
                        paper="ReLU ≈ 6 epochs, tanh ≈ 36: 6x faster",
                        show_ratio=True,
                    ),
                ),
            ),
        ),
    )
)

_register(
    Experiment(
        name="lrn",
        title="Local response normalisation (AlexNet §3.3; VGG Table 3, A vs A-LRN)",
        grids=(
            Grid(
                name="convnet4",
                cells=(
                    Cell(("model.norm=none",), "no LRN"),
                    Cell(("model.norm=lrn",), "LRN"),
                ),
                quick=_quick("exp_convnet4_cifar10", 500, 8, 2, *CONVNET4_QUICK),
                paper=Recipe("exp_convnet4_cifar10", (), 3),
                claims=(
                    Claim(
                        statement="Response normalisation lowers the test error of a "
                        "four-layer CNN on CIFAR-10 from 13% to 11%",
                        source="AlexNet §3.3",
                        metric=TEST_ERROR,
                        first="LRN",
                        second="no LRN",
                        paper="11% with LRN vs 13% without (2 points)",
                    ),
                ),
            ),
            Grid(
                name="vgg11",
                cells=(
                    Cell(("model.norm=none",), "A"),
                    Cell(("model.norm=lrn",), "A-LRN"),
                ),
                quick=_quick(
                    "vgg16_cifar10",
                    200,
                    4,
                    1,
                    *DEEP_QUICK,
                    "model.name=vgg11_cifar",
                    notes=("VGG-11 (A) adapted to 32x32: one 512 -> 10 linear head",),
                ),
                paper=Recipe(
                    "vgg16_cifar10",
                    ("model.name=vgg11_cifar",),
                    3,
                    ("VGG-11 (A) adapted to 32x32: one 512 -> 10 linear head",),
                ),
                claims=(
                    Claim(
                        statement="LRN does not improve configuration A (VGG-11)",
                        source="VGG §4.1, Table 3",
                        metric=TEST_ERROR,
                        first="A-LRN",
                        second="A",
                        paper="top-1 error 29.7% (A-LRN) vs 29.6% (A)",
                        expect="no_gain",
                        tolerance=0.5,
                        scope="ImageNet",
                    ),
                ),
            ),
        ),
    )
)

_POOL_CLAIM = "Overlapping pooling (3x3 windows, stride 2) lowers the {which} error by {points}"
_register(
    Experiment(
        name="overlap-pool",
        title="Overlapping pooling, 3x3/2 vs 2x2/2 (AlexNet §3.4)",
        grids=(
            Grid(
                name="pooling",
                cells=(
                    Cell(("model.overlap_pool=false",), "2x2/2"),
                    Cell(("model.overlap_pool=true",), "3x3/2"),
                ),
                quick=_quick(
                    "exp_convnet4_cifar10",
                    500,
                    8,
                    2,
                    *CONVNET4_QUICK,
                    notes=(
                        "on the four-layer CIFAR net (convnet4_cifar), not AlexNet: "
                        "alexnet_cifar is ~20x slower on a CPU",
                    ),
                ),
                paper=Recipe(
                    "exp_alexnet_cifar10",
                    (),
                    3,
                    ("AlexNet adapted to 32x32 (alexnet_cifar) on CIFAR-10, not ImageNet",),
                ),
                claims=(
                    Claim(
                        statement=_POOL_CLAIM.format(which="top-1", points="0.4 points"),
                        source="AlexNet §3.4",
                        metric=TEST_ERROR,
                        first="3x3/2",
                        second="2x2/2",
                        paper="top-1 error 0.4 points lower",
                        scope="ImageNet",
                    ),
                    Claim(
                        statement=_POOL_CLAIM.format(which="top-5", points="0.3 points"),
                        source="AlexNet §3.4",
                        metric=TEST_TOP5_ERROR,
                        first="3x3/2",
                        second="2x2/2",
                        paper="top-5 error 0.3 points lower",
                        scope="ImageNet; on CIFAR-10's 10 classes top-5 error is near zero",
                    ),
                ),
            ),
        ),
    )
)

_register(
    Experiment(
        name="batchnorm",
        title="VGG-16 with and without BatchNorm on CIFAR-10 (a published student run)",
        grids=(
            Grid(
                name="vgg16",
                cells=(
                    Cell(("model.norm=none",), "VGG-16"),
                    Cell(("model.norm=bn",), "VGG-16 + BN"),
                ),
                quick=_quick("vgg16_cifar10", 100, 4, 1, *DEEP_QUICK),
                paper=Recipe("vgg16_cifar10", (), 3),
                claims=(
                    Claim(
                        statement="BatchNorm raises VGG-16's CIFAR-10 test accuracy after "
                        "50 epochs from about 85.5% to 90.82%",
                        source="student run, configs/vgg16_cifar10.yaml recipe",
                        metric=TEST_ERROR,
                        first="VGG-16 + BN",
                        second="VGG-16",
                        paper="test error 9.18% with BN vs ~14.5% without",
                    ),
                    Claim(
                        statement="With BatchNorm VGG-16 reaches 80% validation accuracy in "
                        "9 epochs instead of 19",
                        source="student run, configs/vgg16_cifar10.yaml recipe",
                        metric=epochs_to("val_top1", 80.0),
                        quick_metric=epochs_to("val_top1", 30.0),
                        first="VGG-16 + BN",
                        second="VGG-16",
                        paper="9 vs 19 epochs: 2.1x faster",
                        show_ratio=True,
                    ),
                ),
            ),
        ),
    )
)

_DEPTH_PAPER = "top-1 val error at S=256: A 29.6, B 28.7, D 27.0, E 27.3 (%)"
_DEPTH_SHORTCUT = "BatchNorm in every net (model.norm=bn), so the deep nets train in 3 epochs"
_register(
    Experiment(
        name="vgg-depth",
        title="VGG depth: configurations A, B, D, E (VGG §4.1, Table 3)",
        grids=(
            Grid(
                name="depth",
                cells=(
                    Cell(("model.name=vgg11_cifar",), "A (11 layers)"),
                    Cell(("model.name=vgg13_cifar",), "B (13 layers)"),
                    Cell(("model.name=vgg16_cifar",), "D (16 layers)"),
                    Cell(("model.name=vgg19_cifar",), "E (19 layers)"),
                ),
                quick=_quick(
                    "vgg16_cifar10",
                    100,
                    3,
                    1,
                    *DEEP_QUICK,
                    "model.norm=bn",
                    notes=(_DEPTH_SHORTCUT,),
                ),
                paper=Recipe(
                    "vgg16_cifar10",
                    (),
                    3,
                    ("32x32 adaptations (512 -> 10 head), trained from Glorot init (§3.1)",),
                ),
                claims=(
                    Claim(
                        statement="B (13 layers) has a lower error than A (11)",
                        source="VGG §4.1, Table 3",
                        metric=TEST_ERROR,
                        first="B (13 layers)",
                        second="A (11 layers)",
                        paper=_DEPTH_PAPER,
                        scope="ImageNet",
                    ),
                    Claim(
                        statement="D (16 layers) has a lower error than B (13)",
                        source="VGG §4.1, Table 3",
                        metric=TEST_ERROR,
                        first="D (16 layers)",
                        second="B (13 layers)",
                        paper=_DEPTH_PAPER,
                        scope="ImageNet",
                    ),
                    Claim(
                        statement="The error saturates at 19 layers: E is no better than D",
                        source="VGG §4.1, Table 3",
                        metric=TEST_ERROR,
                        first="E (19 layers)",
                        second="D (16 layers)",
                        paper=_DEPTH_PAPER,
                        expect="no_gain",
                        tolerance=0.5,
                        scope="ImageNet",
                    ),
                ),
            ),
        ),
    )
)

_register(
    Experiment(
        name="dropout",
        title="Dropout in the fully connected layers (AlexNet §4.2)",
        grids=(
            Grid(
                name="dropout",
                cells=(
                    Cell(("model.dropout=0",), "no dropout"),
                    Cell(("model.dropout=0.5",), "dropout 0.5"),
                ),
                quick=_quick(
                    "alexnet_cifar10",
                    200,
                    4,
                    1,
                    *DEEP_QUICK,
                    "model.name=alexnet_bn_cifar",
                    "data.augment=none",
                    notes=(
                        "alexnet_bn_cifar: BatchNorm after each conv instead of LRN (the FC "
                        "layers and their dropout are unchanged); with LRN the 32x32 AlexNet "
                        "stayed at chance for 4 epochs of this subset",
                        "Adam lr 1e-3 (the student recipe, configs/alexnet_cifar10.yaml), not "
                        "§5's SGD, which leaves the net at chance for the first epochs",
                        "no augmentation, so the overfitting shows within 4 epochs",
                    ),
                ),
                paper=Recipe(
                    "exp_alexnet_cifar10",
                    (),
                    3,
                    ("AlexNet adapted to 32x32 (alexnet_cifar) on CIFAR-10, not ImageNet",),
                ),
                claims=(
                    Claim(
                        statement="Without dropout the network overfits substantially",
                        source="AlexNet §4.2",
                        metric=GENERALIZATION_GAP,
                        first="dropout 0.5",
                        second="no dropout",
                        paper="no number given: 'substantial overfitting' without dropout",
                        scope="ImageNet",
                    ),
                    Claim(
                        statement="Dropout roughly doubles the number of iterations "
                        "required to converge",
                        source="AlexNet §4.2",
                        metric=epochs_to("train_top1", 60.0),
                        quick_metric=epochs_to("train_top1", 40.0),
                        first="no dropout",
                        second="dropout 0.5",
                        paper="about 2x the iterations with dropout",
                        show_ratio=True,
                        scope="ImageNet",
                    ),
                ),
            ),
        ),
    )
)


def experiment_names() -> list[str]:
    return EXPERIMENTS.names()


def get_experiment(name: str) -> Experiment:
    """The experiment `name`; an unknown name raises UserError listing the experiments."""
    return EXPERIMENTS.get(name)
