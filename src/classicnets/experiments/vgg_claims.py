"""VGG's claims as experiments (Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", arXiv:1409.1556): depth A/B/D/E (§4.1, Table 3); and VGG-16
with and without BatchNorm on CIFAR-10, after a published student run (the recipe in
configs/vgg16_cifar10.yaml). Importing this module registers them."""

from classicnets.experiments.ablate import Cell
from classicnets.experiments.catalog import (
    DEEP_QUICK,
    Claim,
    Experiment,
    Grid,
    Recipe,
    quick_recipe,
    register_experiment,
)
from classicnets.experiments.measures import TEST_ERROR, epochs_to

register_experiment(
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
                quick=quick_recipe("vgg16_cifar10", 100, 4, 1, *DEEP_QUICK),
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
register_experiment(
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
                quick=quick_recipe(
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
