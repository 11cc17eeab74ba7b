"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks" (NIPS 2012), the paper's two-column net and its relatives: the one-tower
variant, torchvision's "one weird trick" layout (arXiv:1404.5997), 32x32 CIFAR adaptations and
the nets of published student runs. Every variant is one `AlexNet` built from a layout table
and a row of knob values (`ALEXNET_VARIANTS`); alexnet_columns.py puts the two columns of the
paper's net on two devices."""

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from classicnets.kernels import AdaptiveAvgPool2d, Conv2d, Dropout
from classicnets.models.alexnet_columns import TwoColumnAlexNet, split_columns
from classicnets.models.blocks import (
    Activation,
    DropoutPosition,
    InitScheme,
    LrnAlpha,
    Norm,
    activation_layer,
    init_default,
    init_kaiming,
    init_normal,
    init_xavier,
    paper_lrn,
)
from classicnets.models.catalog import Variant, register_variants

__all__ = ["TWO_COLUMN_MODELS", "AlexNet", "TwoColumnAlexNet", "split_columns"]


@dataclass(frozen=True)
class ConvLayer:
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class AlexNetLayout:
    convs: tuple[ConvLayer, ConvLayer, ConvLayer, ConvLayer, ConvLayer]
    pool_padding: int  # padding of the 3x3/2 pool, so it gives the 2x2/2 pool's output size


# Fig. 2 and §3.5: conv1 11x11/4 (96), conv2 5x5 (256), conv3-conv5 3x3 (384, 384, 256).
ALEXNET_LAYOUTS: dict[str, AlexNetLayout] = {
    "paper": AlexNetLayout(
        convs=(
            ConvLayer(96, 11, stride=4),
            ConvLayer(256, 5, padding=2),
            ConvLayer(384, 3, padding=1),
            ConvLayer(384, 3, padding=1),
            ConvLayer(256, 3, padding=1),
        ),
        pool_padding=0,
    ),
    # torchvision's alexnet (arXiv:1404.5997 §3 widths); its state_dict loads into this layout.
    "owt": AlexNetLayout(
        convs=(
            ConvLayer(64, 11, stride=4, padding=2),
            ConvLayer(192, 5, padding=2),
            ConvLayer(384, 3, padding=1),
            ConvLayer(256, 3, padding=1),
            ConvLayer(256, 3, padding=1),
        ),
        pool_padding=0,
    ),
    # 32x32: every conv 3x3 pad 1, so only the three pools shrink the map: 32 -> 16 -> 8 -> 4.
    "cifar": AlexNetLayout(
        convs=(
            ConvLayer(96, 3, padding=1),
            ConvLayer(256, 3, padding=1),
            ConvLayer(384, 3, padding=1),
            ConvLayer(384, 3, padding=1),
            ConvLayer(256, 3, padding=1),
        ),
        pool_padding=1,
    ),
}
# §3.2/§3.5: with two columns, conv2, conv4 and conv5 see only their own GPU's maps (groups=2).
COLUMN_SPLIT = (False, True, False, True, True)
POOL_AFTER = (0, 1, 4)  # §3.5: max-pooling follows conv1, conv2 and conv5
LRN_AFTER = (0, 1)  # §3.5: response normalisation follows conv1 and conv2
BIAS_ONE_CONVS = (1, 3, 4)  # §5: conv2, conv4, conv5 (and the hidden FC layers) start with bias 1
HIDDEN_WIDTH = 4096  # §3.5: the fully connected layers have 4096 neurons each


class AlexNet(nn.Module):
    """Five conv layers and three fully connected layers (Fig. 2), built from a layout."""

    def __init__(
        self,
        layout: AlexNetLayout,
        num_classes: int,
        *,
        norm: Norm,
        lrn_alpha: LrnAlpha,
        activation: Activation,
        overlap_pool: bool,
        columns: int,
        dropout: float,
        dropout_position: DropoutPosition,
        pooled_size: int,
        init: InitScheme,
    ) -> None:
        super().__init__()
        self.features = _features(layout, norm, lrn_alpha, activation, overlap_pool, columns)
        # The identity when pooled_size is the last map's side; else it resizes that map.
        self.avgpool = AdaptiveAvgPool2d(pooled_size)
        in_features = layout.convs[-1].out_channels * pooled_size**2
        self.classifier = _classifier(
            in_features, num_classes, activation, dropout, dropout_position
        )
        self._init_weights(init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        logits: torch.Tensor = self.classifier(torch.flatten(x, 1))  # (N, 256, 6, 6) -> (N, 9216)
        return logits

    def _init_weights(self, init: InitScheme) -> None:
        if init == "paper":
            # §5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FC layers,
            # which gives the ReLUs positive inputs early on; 0 elsewhere.
            init_normal(self, std=0.01)
            convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
            hidden = [m for m in self.classifier if isinstance(m, nn.Linear)][:-1]
            for layer in [convs[i] for i in BIAS_ONE_CONVS] + hidden:
                if layer.bias is not None:
                    nn.init.ones_(layer.bias)
        elif init == "kaiming":
            init_kaiming(self)
        elif init == "xavier":
            init_xavier(self)
        elif init in ("torchvision", "default"):
            init_default(self)  # torchvision's AlexNet keeps PyTorch's default layer init
        else:
            raise ValueError(f"unknown init scheme {init!r}")


def _features(
    layout: AlexNetLayout,
    norm: Norm,
    lrn_alpha: LrnAlpha,
    activation: Activation,
    overlap_pool: bool,
    columns: int,
) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for index, conv in enumerate(layout.convs):
        groups = columns if COLUMN_SPLIT[index] else 1
        layers.append(
            Conv2d(
                in_channels,
                conv.out_channels,
                conv.kernel_size,
                stride=conv.stride,
                padding=conv.padding,
                groups=groups,
            )
        )
        if norm == "bn":
            # Deviation (not in paper): BatchNorm after every conv replaces LRN.
            layers.append(nn.BatchNorm2d(conv.out_channels))
        layers.append(activation_layer(activation))
        if norm == "lrn" and index in LRN_AFTER:
            # §3.3, after the ReLU; each GPU normalised its own maps, as grouped LRN does.
            layers.append(paper_lrn(groups=columns, lrn_alpha=lrn_alpha))
        if index in POOL_AFTER:
            # §3.4: overlapping pooling, z=3, s=2; the ablation uses z=s=2 (same output size).
            if overlap_pool:
                layers.append(nn.MaxPool2d(3, stride=2, padding=layout.pool_padding))
            else:
                layers.append(nn.MaxPool2d(2, stride=2))
        in_channels = conv.out_channels
    return nn.Sequential(*layers)


def _classifier(
    in_features: int,
    num_classes: int,
    activation: Activation,
    dropout: float,
    dropout_position: DropoutPosition,
) -> nn.Sequential:
    fc6 = nn.Linear(in_features, HIDDEN_WIDTH)
    fc7 = nn.Linear(HIDDEN_WIDTH, HIDDEN_WIDTH)
    fc8 = nn.Linear(HIDDEN_WIDTH, num_classes)
    if dropout_position == "after_fc":
        # §4.2: dropout zeroes the outputs of the hidden neurons of the first two FC layers.
        return nn.Sequential(
            fc6,
            activation_layer(activation),
            Dropout(dropout),
            fc7,
            activation_layer(activation),
            Dropout(dropout),
            fc8,
        )
    return nn.Sequential(  # torchvision's order: dropout on the inputs of fc6 and fc7
        Dropout(dropout),
        fc6,
        activation_layer(activation),
        Dropout(dropout),
        fc7,
        activation_layer(activation),
        fc8,
    )


def _build(variant: Variant, num_classes: int, knobs: dict[str, Any]) -> nn.Module:
    return AlexNet(ALEXNET_LAYOUTS[variant.table_key], num_classes, **knobs)


# The paper's knobs: two columns, LRN as §3.3 writes it, ReLU, overlapping pools, dropout 0.5
# on the hidden FC outputs, the 6x6 maps of a 227x227 input, §5 init.
PAPER: dict[str, Any] = {
    "norm": "lrn",
    "lrn_alpha": "paper",
    "activation": "relu",
    "overlap_pool": True,
    "columns": 2,
    "dropout": 0.5,
    "dropout_position": "after_fc",
    "pooled_size": 6,
    "init": "paper",
}
ONE_TOWER = {**PAPER, "columns": 1}
CIFAR = {**ONE_TOWER, "overlap_pool": False, "pooled_size": 4, "init": "kaiming"}
# What ports written against PyTorch do: no LRN, dropout before fc6 and fc7, default init.
PORT = {**ONE_TOWER, "norm": "none", "dropout_position": "before_fc", "init": "default"}
STUDENT_RUN = "the net of a published student run"
PAPER_CITE = "Krizhevsky et al. 2012 §3, Fig. 2"
CIFAR_CHANGES = (
    "3x3 pad-1 convs with stride 1; 2x2 max-pools after conv1, conv2, conv5 (32 -> 16 -> 8 "
    "-> 4, so fc6 sees 256x4x4 = 4096 inputs); one tower (no groups)"
)
ALEXNET_VARIANTS = [
    Variant(
        "alexnet",
        "paper",
        PAPER,
        227,
        67,
        PAPER_CITE,
        "AlexNet as published: two columns as grouped convs, LRN, overlapping pools, dropout.",
        "none at 227x227 (an adaptive average pool, the identity there, lets other input "
        "sizes through).",
    ),
    Variant(
        "alexnet_onetower",
        "paper",
        ONE_TOWER,
        227,
        67,
        "Krizhevsky et al. 2012 §3.5, Fig. 2 with the two columns merged",
        "AlexNet on one device: the paper's widths with no column split.",
        "conv2, conv4 and conv5 see all input maps (no groups), 62,378,344 parameters.",
    ),
    Variant(
        "alexnet_bn",
        "paper",
        {**PAPER, "norm": "bn"},
        227,
        67,
        f"{PAPER_CITE}, with BatchNorm (Ioffe & Szegedy 2015)",
        "AlexNet (two columns) with BatchNorm, for quick ImageNet-subset training.",
        "BatchNorm after every conv instead of LRN after conv1 and conv2.",
    ),
    Variant(
        "alexnet_owt",
        "owt",
        {**PORT, "init": "torchvision"},
        224,
        63,
        "Krizhevsky 2014 arXiv:1404.5997 (torchvision's alexnet)",
        "torchvision's AlexNet: 64-192-384-256-256, one tower, no LRN; its weights load as is.",
        "from the 2012 paper, as listed; dropout before fc6 and fc7, PyTorch default init.",
    ),
    Variant(
        "alexnet_cifar",
        "cifar",
        CIFAR,
        32,
        8,
        "Krizhevsky et al. 2012 §3 widths, adapted to 32x32",
        "AlexNet's widths (96-256-384-384-256, FC 4096-4096) on 32x32 images.",
        f"{CIFAR_CHANGES}; He (kaiming) init, since the paper's N(0, 0.01) barely passes a "
        "signal through 3x3 convs; 36,925,322 parameters at 10 classes.",
        num_classes=10,
    ),
    Variant(
        "alexnet_bn_cifar",
        "cifar",
        {**CIFAR, "norm": "bn"},
        32,
        8,
        "Krizhevsky et al. 2012 §3 widths, adapted to 32x32, with BatchNorm",
        "alexnet_cifar with BatchNorm: the quick-to-train CIFAR default.",
        "those of alexnet_cifar, and BatchNorm after every conv instead of LRN.",
        num_classes=10,
    ),
    Variant(
        "alexnet_onetower_nolrn",
        "paper",
        PORT,
        227,
        67,
        f"{PAPER_CITE}; {STUDENT_RUN} on Imagenette",
        "One-tower AlexNet without LRN, as a published student run trains it on Imagenette.",
        "one tower (no groups); no LRN; dropout before fc6 and fc7 instead of on their "
        "outputs (§4.2); PyTorch's default init instead of §5's N(0, 0.01) and unit biases; "
        "58,322,314 parameters at 10 classes.",
        num_classes=10,
    ),
    Variant(
        "alexnet_onetower_bn",
        "paper",
        {**PORT, "norm": "bn"},
        227,
        67,
        f"{PAPER_CITE}, with BatchNorm; {STUDENT_RUN} on Imagenette",
        "alexnet_onetower_nolrn with BatchNorm after every conv (the same run's BN arm).",
        "those of alexnet_onetower_nolrn, and BatchNorm after every conv; 58,325,066 "
        "parameters at 10 classes.",
        num_classes=10,
    ),
    Variant(
        "alexnet_cifar_nolrn",
        "cifar",
        {**CIFAR, "norm": "none", "init": "default"},
        32,
        8,
        f"Krizhevsky et al. 2012 §3 widths, adapted to 32x32; {STUDENT_RUN} on CIFAR-10",
        "alexnet_cifar without LRN and with PyTorch's default init, as a student run has it.",
        f"{CIFAR_CHANGES}; no LRN; PyTorch's default init; 36,925,322 parameters at 10 "
        "classes. (That run puts dropout between each hidden FC layer and its ReLU; ReLU and "
        "dropout commute, so this is the same function.)",
        num_classes=10,
    ),
    Variant(
        "alexnet_onetower_128",
        "paper",
        {**PORT, "norm": "lrn", "lrn_alpha": "pytorch", "pooled_size": 2},
        128,
        67,
        f"{PAPER_CITE}, at 128x128; {STUDENT_RUN} on CIFAR-10 resized to 128",
        "One-tower AlexNet for 128x128 inputs: fc6 takes the 256x2x2 maps (1,024 inputs).",
        "one tower (no groups); LRN with alpha 1e-4 in PyTorch's form, 2e-5 in §3.3's; fc6 "
        "has 1,024 inputs (2x2 maps at 128x128) instead of 9,216; dropout before fc6 and fc7; "
        "PyTorch's default init; 24,767,882 parameters at 10 classes.",
        num_classes=10,
    ),
]
register_variants("alexnet", ALEXNET_VARIANTS, _build)
# The registered models with the paper's column split by default (model.columns=2 gives any).
TWO_COLUMN_MODELS = tuple(v.name for v in ALEXNET_VARIANTS if v.defaults["columns"] == 2)
