"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (arXiv:1409.1556). Configurations A-E of Table 1 in torchvision's module layout
(so its state_dicts load), 32x32 CIFAR adaptations with a 512 -> num_classes head, and the
nets of published student runs; every variant is a row of knob values (`VGG_VARIANTS`)."""

from typing import Any

import torch
from torch import nn

from classicnets.kernels import AdaptiveAvgPool2d, Conv2d, Dropout
from classicnets.models.blocks import (
    DropoutPosition,
    InitScheme,
    Norm,
    init_default,
    init_kaiming,
    init_normal,
    init_xavier,
    paper_lrn,
    reset_batchnorm,
    weighted_layers,
)
from classicnets.models.catalog import Variant, register_variants

# VGG Table 1. Each entry: (width, *kernel_sizes); every stage ends with a 2x2 max-pool (§2.1).
VGG_TABLE_1: dict[str, tuple[tuple[int, ...], ...]] = {
    "A": ((64, 3), (128, 3), (256, 3, 3), (512, 3, 3), (512, 3, 3)),
    "B": ((64, 3, 3), (128, 3, 3), (256, 3, 3), (512, 3, 3), (512, 3, 3)),
    "C": ((64, 3, 3), (128, 3, 3), (256, 3, 3, 1), (512, 3, 3, 1), (512, 3, 3, 1)),  # 1x1 convs
    "D": ((64, 3, 3), (128, 3, 3), (256, 3, 3, 3), (512, 3, 3, 3), (512, 3, 3, 3)),
    "E": ((64, 3, 3), (128, 3, 3), (256, 3, 3, 3, 3), (512, 3, 3, 3, 3), (512, 3, 3, 3, 3)),
}
HIDDEN_WIDTH = 4096  # §2.1: the first two FC layers have 4096 channels each
IMAGENET_POOLED_SIZE = 7  # 224 / 2**5
LAST_WIDTH = 512  # every configuration's last stage


class VGG(nn.Module):
    """A Table 1 configuration: conv stages (`features`), `avgpool`, FC head (`classifier`)."""

    def __init__(
        self,
        config_key: str,
        num_classes: int,
        *,
        norm: Norm,
        dropout: float,
        dropout_position: DropoutPosition,
        pooled_size: int,
        fc_width: int,
        init: InitScheme,
    ) -> None:
        super().__init__()
        self.features = _features(VGG_TABLE_1[config_key], norm)
        # The identity when pooled_size is the last map's side (7 at 224x224, torchvision's
        # layout; 1 at 32x32); else it resizes that map.
        self.avgpool = AdaptiveAvgPool2d(pooled_size)
        in_features = LAST_WIDTH * pooled_size**2
        self.classifier = _classifier(in_features, num_classes, dropout, dropout_position, fc_width)
        self._init_weights(init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        logits: torch.Tensor = self.classifier(torch.flatten(x, 1))  # (N, 512, 7, 7) -> (N, 25088)
        return logits

    def _init_weights(self, init: InitScheme) -> None:
        if init == "paper":
            # §3.1: weights from N(0, 1e-2), biases zero.
            init_normal(self, std=1e-2)
        elif init == "xavier":
            # §3.1 (last paragraph): Glorot & Bengio init trains the nets without pre-training.
            init_xavier(self)
        elif init == "kaiming":
            init_kaiming(self)
        elif init == "default":
            init_default(self)
        elif init == "torchvision":
            for layer in weighted_layers(self):
                if isinstance(layer, nn.Conv2d):
                    nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.normal_(layer.weight, 0.0, 0.01)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            reset_batchnorm(self)
        else:
            raise ValueError(f"unknown init scheme {init!r}")


def _features(stages: tuple[tuple[int, ...], ...], norm: Norm) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for width, *kernel_sizes in stages:
        for kernel_size in kernel_sizes:
            # §2.1: stride 1, padding keeps the spatial size (1 for 3x3, 0 for 1x1).
            layers.append(Conv2d(in_channels, width, kernel_size, padding=kernel_size // 2))
            if norm == "bn":
                layers.append(nn.BatchNorm2d(width))  # not in the paper (torchvision's _bn)
            layers.append(nn.ReLU(inplace=True))
            if norm == "lrn" and in_channels == 3:
                layers.append(paper_lrn())  # Table 1 A-LRN: LRN after the first layer (§2.1)
            in_channels = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def _classifier(
    in_features: int,
    num_classes: int,
    dropout: float,
    dropout_position: DropoutPosition,
    fc_width: int,
) -> nn.Sequential:
    if fc_width == 0:
        # Deviation (CIFAR): one linear layer on the pooled 512 features, dropout before it.
        return nn.Sequential(Dropout(dropout), nn.Linear(in_features, num_classes))
    fc6 = nn.Linear(in_features, fc_width)
    fc7 = nn.Linear(fc_width, fc_width)
    fc8 = nn.Linear(fc_width, num_classes)
    if dropout_position == "after_fc":
        # §2.1 two hidden FC layers, §3.1 dropout 0.5 on both (torchvision's layout).
        return nn.Sequential(
            fc6, nn.ReLU(inplace=True), Dropout(dropout),
            fc7, nn.ReLU(inplace=True), Dropout(dropout),
            fc8,
        )  # fmt: skip
    return nn.Sequential(
        Dropout(dropout), fc6, nn.ReLU(inplace=True),
        Dropout(dropout), fc7, nn.ReLU(inplace=True),
        fc8,
    )  # fmt: skip


def _build(variant: Variant, num_classes: int, knobs: dict[str, Any]) -> nn.Module:
    return VGG(variant.table_key, num_classes, **knobs)


def _paper(column: str, changes: str = "") -> str:
    return f"Simonyan & Zisserman 2014 arXiv:1409.1556 Table 1 col {column}{changes}"


# §2.1/§3.1: the 4096-wide FC layers with dropout 0.5 on their outputs, N(0, 1e-2) init; the
# 224x224 adaptive average pool is the identity, so "none" below means none at that size.
IMAGENET: dict[str, Any] = {
    "norm": "none",
    "dropout": 0.5,
    "dropout_position": "after_fc",
    "pooled_size": IMAGENET_POOLED_SIZE,
    "fc_width": HIDDEN_WIDTH,
    "init": "paper",
}
# 32x32: the five pools leave 512x1x1; one linear layer maps it, no dropout; Glorot (xavier)
# init, which §3.1 reports trains the deep nets from scratch.
CIFAR = {**IMAGENET, "dropout": 0.0, "pooled_size": 1, "fc_width": 0, "init": "xavier"}
CIFAR_CHANGES = "32x32 input; 512 -> num_classes head, no dropout, xavier init"
BN_CHANGE = "BatchNorm after every conv, as torchvision's"
DEPTHS = {"A": 11, "B": 13, "D": 16, "E": 19}
STUDENT_RUN = "the net of a published student run"


def _table_variants() -> list[Variant]:
    """Table 1's columns A, B, D, E, each with and without BatchNorm, at 224 and at 32."""
    variants = []
    for column, depth in DEPTHS.items():
        for bn in (False, True):
            name = f"vgg{depth}{'_bn' if bn else ''}"
            norm = {"norm": "bn" if bn else "none"}
            label = f"VGG-{depth} ({column}){' with BatchNorm' if bn else ''}"
            variants.append(
                Variant(
                    name, column, {**IMAGENET, **norm}, 224, 32,
                    _paper(column, " + BatchNorm" if bn else ""),
                    f"{label}.", f"{BN_CHANGE}." if bn else "none.",
                )
            )  # fmt: skip
            variants.append(
                Variant(
                    f"{name}_cifar", column, {**CIFAR, **norm}, 32, 32,
                    _paper(column, (" + BatchNorm" if bn else "") + ", adapted to 32x32"),
                    f"{label} for 32x32 images.",
                    (f"{BN_CHANGE}; " if bn else "") + f"{CIFAR_CHANGES}.",
                    num_classes=10,
                )
            )  # fmt: skip
    return variants


VGG_VARIANTS = [
    *_table_variants(),
    Variant(
        "vgg11_lrn", "A", {**IMAGENET, "norm": "lrn"}, 224, 32, _paper("A-LRN"),
        "VGG-11 with LRN after the first conv layer, configuration A-LRN.", "none.",
    ),
    Variant(
        "vgg16_c", "C", IMAGENET, 224, 32, _paper("C"),
        "VGG-16 with 1x1 convs ending stages 3-5, configuration C.", "none.",
    ),
    Variant(
        "vgg16_cifar_fc", "D", {**IMAGENET, "pooled_size": 1, "init": "xavier"}, 32, 32,
        _paper("D", f", adapted to 32x32; {STUDENT_RUN} on CIFAR-10"),
        "VGG-16 (D) for 32x32 images with the paper's two 4096-wide FC layers (512 inputs).",
        "32x32 input, so fc6 takes the 512x1x1 maps (512 inputs instead of 25,088); Glorot "
        "(xavier) init; 33,638,218 parameters at 10 classes.",
        num_classes=10,
    ),
    Variant(
        "vgg16_bn_cifar_fc", "D",
        {**IMAGENET, "norm": "bn", "pooled_size": 1, "init": "xavier"}, 32, 32,
        _paper("D", f" + BatchNorm, adapted to 32x32; {STUDENT_RUN} on CIFAR-10"),
        "vgg16_cifar_fc with BatchNorm after every conv (the same run's BN arm).",
        f"{BN_CHANGE}; those of vgg16_cifar_fc; 33,646,666 parameters at 10 classes.",
        num_classes=10,
    ),
    Variant(
        "vgg13_128", "B",
        {**IMAGENET, "pooled_size": 4, "dropout_position": "before_fc", "init": "default"},
        128, 32,
        _paper("B", f", at 128x128; {STUDENT_RUN} on CIFAR-10 resized to 128"),
        "VGG-13 (B, ten 3x3 convs) for 128x128 inputs: fc6 takes the 512x4x4 maps (8,192).",
        "fc6 has 8,192 inputs (4x4 maps at 128x128) instead of 25,088; dropout before fc6 "
        "and fc7 instead of on their outputs; PyTorch's default init instead of §3.1's "
        "N(0, 1e-2); 59,785,802 parameters at 10 classes.",
        num_classes=10,
    ),
]  # fmt: skip
register_variants("vgg", VGG_VARIANTS, _build)
