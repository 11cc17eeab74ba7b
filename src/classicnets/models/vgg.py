"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (arXiv:1409.1556). Configurations A-E of Table 1 in torchvision's module layout
(so its state_dicts load), plus 32x32 CIFAR adaptations with a 512 -> num_classes head."""

from typing import Any

import torch
from torch import nn

from classicnets.models.blocks import (
    AdaptiveAvgPool2d,
    Dropout,
    InitScheme,
    Norm,
    init_kaiming,
    init_normal,
    init_xavier,
    paper_lrn,
    reset_batchnorm,
    weighted_layers,
)
from classicnets.models.catalog import MODELS
from classicnets.models.conv import Conv2d

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


class VGG(nn.Module):
    """A Table 1 configuration: conv stages (`features`), `avgpool`, FC head (`classifier`)."""

    def __init__(
        self,
        config_key: str,
        num_classes: int,
        norm: Norm,
        dropout: float,
        init: InitScheme,
        cifar_head: bool,
    ) -> None:
        super().__init__()
        self.features = _features(VGG_TABLE_1[config_key], norm)
        if cifar_head:
            # Deviation: at 32x32 the five pools leave 512x1x1; one linear layer maps it.
            self.avgpool: nn.Module = AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(Dropout(dropout), nn.Linear(512, num_classes))
        else:
            # Identity at 224x224 (torchvision's layout); lets larger images through.
            self.avgpool = AdaptiveAvgPool2d(IMAGENET_POOLED_SIZE)
            # §2.1 two 4096-wide FC layers, §3.1 dropout 0.5 on both.
            self.classifier = nn.Sequential(
                nn.Linear(512 * IMAGENET_POOLED_SIZE**2, HIDDEN_WIDTH),
                nn.ReLU(inplace=True),
                Dropout(dropout),
                nn.Linear(HIDDEN_WIDTH, HIDDEN_WIDTH),
                nn.ReLU(inplace=True),
                Dropout(dropout),
                nn.Linear(HIDDEN_WIDTH, num_classes),
            )
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


def _build_vgg(
    config_key: str,
    num_classes: int,
    norm: Norm,
    dropout: float,
    init: InitScheme,
    cifar_head: bool = False,
) -> VGG:
    return VGG(
        config_key, num_classes, norm=norm, dropout=dropout, init=init, cifar_head=cifar_head
    )


def _meta(column: str, bn: bool = False, cifar: bool = False) -> dict[str, Any]:
    changes = [text for text, used in ((" + BatchNorm", bn), (", adapted to 32x32", cifar)) if used]
    return {
        "input_size": (3, 32, 32) if cifar else (3, 224, 224),
        "min_input_size": 32,  # five 2x2 pools: 32 -> 1
        "paper": f"Simonyan & Zisserman 2014 arXiv:1409.1556 Table 1 col {column}"
        + "".join(changes),
        "family": "vgg",
    }


# ImageNet builders: the 224x224 adaptive average pool is the identity, so "none" below
# means none at the native size.


@MODELS.register("vgg11", **_meta("A"))
def vgg11(
    num_classes: int = 1000, norm: Norm = "none", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-11, configuration A. Deviations: none."""
    return _build_vgg("A", num_classes, norm, dropout, init)


@MODELS.register("vgg11_lrn", **_meta("A-LRN"))
def vgg11_lrn(
    num_classes: int = 1000, norm: Norm = "lrn", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-11 with LRN after the first conv layer, configuration A-LRN. Deviations: none."""
    return _build_vgg("A", num_classes, norm, dropout, init)


@MODELS.register("vgg13", **_meta("B"))
def vgg13(
    num_classes: int = 1000, norm: Norm = "none", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-13, configuration B. Deviations: none."""
    return _build_vgg("B", num_classes, norm, dropout, init)


@MODELS.register("vgg16_c", **_meta("C"))
def vgg16_c(
    num_classes: int = 1000, norm: Norm = "none", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-16 with 1x1 convs ending stages 3-5, configuration C. Deviations: none."""
    return _build_vgg("C", num_classes, norm, dropout, init)


@MODELS.register("vgg16", **_meta("D"))
def vgg16(
    num_classes: int = 1000, norm: Norm = "none", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-16, configuration D. Deviations: none."""
    return _build_vgg("D", num_classes, norm, dropout, init)


@MODELS.register("vgg19", **_meta("E"))
def vgg19(
    num_classes: int = 1000, norm: Norm = "none", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-19, configuration E. Deviations: none."""
    return _build_vgg("E", num_classes, norm, dropout, init)


@MODELS.register("vgg11_bn", **_meta("A", bn=True))
def vgg11_bn(
    num_classes: int = 1000, norm: Norm = "bn", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-11 (A) with BatchNorm. Deviations: BatchNorm after every conv, as torchvision's."""
    return _build_vgg("A", num_classes, norm, dropout, init)


@MODELS.register("vgg13_bn", **_meta("B", bn=True))
def vgg13_bn(
    num_classes: int = 1000, norm: Norm = "bn", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-13 (B) with BatchNorm. Deviations: BatchNorm after every conv, as torchvision's."""
    return _build_vgg("B", num_classes, norm, dropout, init)


@MODELS.register("vgg16_bn", **_meta("D", bn=True))
def vgg16_bn(
    num_classes: int = 1000, norm: Norm = "bn", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-16 (D) with BatchNorm. Deviations: BatchNorm after every conv, as torchvision's."""
    return _build_vgg("D", num_classes, norm, dropout, init)


@MODELS.register("vgg19_bn", **_meta("E", bn=True))
def vgg19_bn(
    num_classes: int = 1000, norm: Norm = "bn", dropout: float = 0.5, init: InitScheme = "paper"
) -> VGG:
    """VGG-19 (E) with BatchNorm. Deviations: BatchNorm after every conv, as torchvision's."""
    return _build_vgg("E", num_classes, norm, dropout, init)


# CIFAR builders. Deviations for all: 32x32 input; a 512 -> num_classes head instead of the
# 4096-wide FC layers (the five pools leave 512x1x1), with dropout 0 before it by default;
# Glorot (xavier) init by default, which §3.1 reports trains the deep nets from scratch.


@MODELS.register("vgg11_cifar", **_meta("A", cifar=True))
def vgg11_cifar(
    num_classes: int = 10, norm: Norm = "none", dropout: float = 0.0, init: InitScheme = "xavier"
) -> VGG:
    """VGG-11 (A) for 32x32 images.

    Deviations: 512 -> num_classes head, no dropout, xavier init (see above).
    """
    return _build_vgg("A", num_classes, norm, dropout, init, cifar_head=True)


@MODELS.register("vgg13_cifar", **_meta("B", cifar=True))
def vgg13_cifar(
    num_classes: int = 10, norm: Norm = "none", dropout: float = 0.0, init: InitScheme = "xavier"
) -> VGG:
    """VGG-13 (B) for 32x32 images.

    Deviations: 512 -> num_classes head, no dropout, xavier init (see above).
    """
    return _build_vgg("B", num_classes, norm, dropout, init, cifar_head=True)


@MODELS.register("vgg16_cifar", **_meta("D", cifar=True))
def vgg16_cifar(
    num_classes: int = 10, norm: Norm = "none", dropout: float = 0.0, init: InitScheme = "xavier"
) -> VGG:
    """VGG-16 (D) for 32x32 images.

    Deviations: 512 -> num_classes head, no dropout, xavier init (see above).
    """
    return _build_vgg("D", num_classes, norm, dropout, init, cifar_head=True)


@MODELS.register("vgg19_cifar", **_meta("E", cifar=True))
def vgg19_cifar(
    num_classes: int = 10, norm: Norm = "none", dropout: float = 0.0, init: InitScheme = "xavier"
) -> VGG:
    """VGG-19 (E) for 32x32 images.

    Deviations: 512 -> num_classes head, no dropout, xavier init (see above).
    """
    return _build_vgg("E", num_classes, norm, dropout, init, cifar_head=True)


@MODELS.register("vgg11_bn_cifar", **_meta("A", bn=True, cifar=True))
def vgg11_bn_cifar(
    num_classes: int = 10, norm: Norm = "bn", dropout: float = 0.0, init: InitScheme = "xavier"
) -> VGG:
    """VGG-11 (A) with BatchNorm for 32x32 images.

    Deviations: BatchNorm after every conv; 512 -> num_classes head, no dropout, xavier init.
    """
    return _build_vgg("A", num_classes, norm, dropout, init, cifar_head=True)


@MODELS.register("vgg13_bn_cifar", **_meta("B", bn=True, cifar=True))
def vgg13_bn_cifar(
    num_classes: int = 10, norm: Norm = "bn", dropout: float = 0.0, init: InitScheme = "xavier"
) -> VGG:
    """VGG-13 (B) with BatchNorm for 32x32 images.

    Deviations: BatchNorm after every conv; 512 -> num_classes head, no dropout, xavier init.
    """
    return _build_vgg("B", num_classes, norm, dropout, init, cifar_head=True)


@MODELS.register("vgg16_bn_cifar", **_meta("D", bn=True, cifar=True))
def vgg16_bn_cifar(
    num_classes: int = 10, norm: Norm = "bn", dropout: float = 0.0, init: InitScheme = "xavier"
) -> VGG:
    """VGG-16 (D) with BatchNorm for 32x32 images.

    Deviations: BatchNorm after every conv; 512 -> num_classes head, no dropout, xavier init.
    """
    return _build_vgg("D", num_classes, norm, dropout, init, cifar_head=True)


@MODELS.register("vgg19_bn_cifar", **_meta("E", bn=True, cifar=True))
def vgg19_bn_cifar(
    num_classes: int = 10, norm: Norm = "bn", dropout: float = 0.0, init: InitScheme = "xavier"
) -> VGG:
    """VGG-19 (E) with BatchNorm for 32x32 images.

    Deviations: BatchNorm after every conv; 512 -> num_classes head, no dropout, xavier init.
    """
    return _build_vgg("E", num_classes, norm, dropout, init, cifar_head=True)
