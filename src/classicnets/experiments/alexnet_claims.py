"""AlexNet's claims as experiments (Krizhevsky, Sutskever & Hinton, "ImageNet Classification
with Deep Convolutional Neural Networks", NIPS 2012): ReLU vs tanh (§3.1), response
normalisation (§3.3, with VGG's A vs A-LRN beside it), overlapping pooling (§3.4), dropout
(§4.2). Importing this module registers them."""

from classicnets.experiments.ablate import Cell
from classicnets.experiments.catalog import (
    CONVNET4_QUICK,
    DEEP_QUICK,
    Claim,
    Experiment,
    Grid,
    Recipe,
    quick_recipe,
    register_experiment,
)
from classicnets.experiments.measures import (
    GENERALIZATION_GAP,
    TEST_ERROR,
    TEST_TOP5_ERROR,
    epochs_to,
)

# AlexNet §3.1, Fig. 1: "no regularization of any kind"; learning rates were tuned per net.
_RELU_SAME_LR = "one learning rate for both nets; the paper tuned each net's own"
_RELU_LRN = (
    "the net keeps its LRN (the §3.3 four-layer net); Fig. 1 does not say whether its nets "
    "had it. No weight decay, dropout or augmentation"
)
# The cpu budget (docs/experiments.md): the full training split (no val carve: nothing is
# selected), the test split scored once at the end, 3 seeds, bf16 where native, and fewer
# epochs than the paper budget where the claim is decided before then.
CPU_DATA = ("data.val_fraction=0", "train.amp=bf16")
_CPU_SHORT = "{epochs} epochs, fewer than the paper budget's, with bf16 autocast"
_RELU_PAPER = ("data.augment=none", "optim.weight_decay=0", "schedule.name=constant")
# Room for the decisive rule's 3x (half the paper's 6x) if ReLU needs up to 10 epochs to 25%
# training error (about 6 in Fig. 1); a tanh seed still short of it at 30 counts as >= 30.
RELU_CPU_EPOCHS = 30
RELU_THRESHOLD = 75.0  # training top-1 (%): 25% training error
# Each cpu-budget run stops after the epoch that first reaches the threshold: the measure is
# that epoch, which the later epochs cannot change (the ReLU runs need about 6 of the 30).
_RELU_CPU_STOP = f"train.stop_at_train_top1={RELU_THRESHOLD:g}"
_RELU_STOPS = (
    "each run stops after the epoch reaching 25% training error, so the test top-1 of the "
    "two nets is after different numbers of epochs"
)
LRN_CPU_EPOCHS = 30  # lr / 10 at epochs 20 and 25, the paper budget's 40 and 50 of 60 scaled

register_experiment(
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
                quick=quick_recipe(
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
                    (*_RELU_PAPER, "train.epochs=40"),
                    3,
                    (_RELU_SAME_LR, _RELU_LRN),
                ),
                cpu=Recipe(
                    "exp_convnet4_cifar10",
                    (*_RELU_PAPER, f"train.epochs={RELU_CPU_EPOCHS}", _RELU_CPU_STOP, *CPU_DATA),
                    3,
                    (
                        _RELU_SAME_LR,
                        _RELU_LRN,
                        _CPU_SHORT.format(epochs=RELU_CPU_EPOCHS),
                        _RELU_STOPS,
                    ),
                ),
                claims=(
                    Claim(
                        statement="A four-layer CNN with ReLUs reaches 25% training error on "
                        "CIFAR-10 six times faster than the same net with tanh units",
                        source="AlexNet §3.1, Fig. 1",
                        metric=epochs_to("train_top1", RELU_THRESHOLD),
                        quick_metric=epochs_to("train_top1", 60.0),
                        first="ReLU",
                        second="tanh",
                        paper="ReLU ≈ 6 epochs, tanh ≈ 36: 6x faster",
                        show_ratio=True,
                        decisive=3.0,
                    ),
                ),
            ),
        ),
    )
)

_LRN_NET_INFERRED = (
    "the paper does not describe its CIFAR-10 net (§3.3 points to cuda-convnet's files): the "
    "layers (three 5x5 convs of 32, 32, 64 maps, max/avg/avg 3x3 pools, LRN after pools 1 and "
    "2, one linear layer), init and schedule are inferred from cuda-convnet's layers-18pct; "
    "the LRN constants are §3.3's; its 11% net was probably cuda-convnet's larger "
    "conv + locally-connected net, so only the size of the gain is compared"
)

register_experiment(
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
                quick=quick_recipe("exp_convnet4_cifar10", 500, 8, 2, *CONVNET4_QUICK),
                paper=Recipe("exp_convnet4_cifar10", (), 3),
                cpu=Recipe(
                    "exp_convnet4_cifar10",
                    (
                        f"train.epochs={LRN_CPU_EPOCHS}",
                        "schedule.milestones=[20, 25]",
                        *CPU_DATA,
                    ),
                    3,
                    (_CPU_SHORT.format(epochs=LRN_CPU_EPOCHS), _LRN_NET_INFERRED),
                ),
                claims=(
                    Claim(
                        statement="Response normalisation lowers the test error of a "
                        "four-layer CNN on CIFAR-10 from 13% to 11%",
                        source="AlexNet §3.3",
                        metric=TEST_ERROR,
                        first="LRN",
                        second="no LRN",
                        paper="11% with LRN vs 13% without (2 points)",
                        decisive=1.0,
                    ),
                ),
            ),
            Grid(
                name="vgg11",
                cells=(
                    Cell(("model.norm=none",), "A"),
                    Cell(("model.norm=lrn",), "A-LRN"),
                ),
                quick=quick_recipe(
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
register_experiment(
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
                quick=quick_recipe(
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

register_experiment(
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
                quick=quick_recipe(
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
