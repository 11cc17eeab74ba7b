"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks" (NIPS 2012), the paper's two-column net and its relatives: the one-tower
variant, torchvision's "one weird trick" layout (arXiv:1404.5997) and 32x32 CIFAR adaptations.
Every variant is one `AlexNet` class built from a small layout table."""

from dataclasses import dataclass

import torch
from torch import nn

from classicnets.models.blocks import (
    Activation,
    InitScheme,
    Norm,
    activation_layer,
    init_kaiming,
    init_normal,
    init_xavier,
    paper_lrn,
    weighted_layers,
)
from classicnets.models.catalog import MODELS


@dataclass(frozen=True)
class ConvLayer:
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    groups: int = 1  # §3.2/Fig. 2: groups=2 is the two-GPU column split


@dataclass(frozen=True)
class AlexNetLayout:
    convs: tuple[ConvLayer, ConvLayer, ConvLayer, ConvLayer, ConvLayer]
    pooled_size: int  # side of the last feature map at the native input: 6 (227x227), 4 (32x32)
    pool_padding: int  # padding of the 3x3/2 pool, so it gives the 2x2/2 pool's output size
    dropout_on_hidden: bool  # §4.2 order (dropout after fc6, fc7) or torchvision's (before)


# Fig. 2 and §3.5: conv1 11x11/4 (96), conv2 5x5 (256), conv3-conv5 3x3 (384, 384, 256).
# conv2, conv4 and conv5 only see the maps on their own GPU, i.e. groups=2.
ALEXNET_LAYOUTS: dict[str, AlexNetLayout] = {
    "paper": AlexNetLayout(
        convs=(
            ConvLayer(96, 11, stride=4),
            ConvLayer(256, 5, padding=2, groups=2),
            ConvLayer(384, 3, padding=1),
            ConvLayer(384, 3, padding=1, groups=2),
            ConvLayer(256, 3, padding=1, groups=2),
        ),
        pooled_size=6,
        pool_padding=0,
        dropout_on_hidden=True,
    ),
    "one_tower": AlexNetLayout(
        convs=(
            ConvLayer(96, 11, stride=4),
            ConvLayer(256, 5, padding=2),
            ConvLayer(384, 3, padding=1),
            ConvLayer(384, 3, padding=1),
            ConvLayer(256, 3, padding=1),
        ),
        pooled_size=6,
        pool_padding=0,
        dropout_on_hidden=True,
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
        pooled_size=6,
        pool_padding=0,
        dropout_on_hidden=False,
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
        pooled_size=4,
        pool_padding=1,
        dropout_on_hidden=True,
    ),
}
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
        norm: Norm,
        activation: Activation,
        overlap_pool: bool,
        dropout: float,
        init: InitScheme,
    ) -> None:
        super().__init__()
        self.features = _features(layout, norm, activation, overlap_pool)
        # Identity at the native input size; lets other sizes through (not in the paper).
        self.avgpool = nn.AdaptiveAvgPool2d(layout.pooled_size)
        in_features = layout.convs[-1].out_channels * layout.pooled_size**2
        self.classifier = _classifier(in_features, num_classes, activation, dropout, layout)
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
        elif init == "torchvision":
            # torchvision's AlexNet keeps PyTorch's default layer init.
            for layer in weighted_layers(self):
                layer.reset_parameters()
        else:
            raise ValueError(f"unknown init scheme {init!r}")


def _features(
    layout: AlexNetLayout, norm: Norm, activation: Activation, overlap_pool: bool
) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for index, conv in enumerate(layout.convs):
        layers.append(
            nn.Conv2d(
                in_channels,
                conv.out_channels,
                conv.kernel_size,
                stride=conv.stride,
                padding=conv.padding,
                groups=conv.groups,
            )
        )
        if norm == "bn":
            # Deviation (not in paper): BatchNorm after every conv replaces LRN.
            layers.append(nn.BatchNorm2d(conv.out_channels))
        layers.append(activation_layer(activation))
        if norm == "lrn" and index in LRN_AFTER:
            layers.append(paper_lrn())  # §3.3: applied after the ReLU
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
    layout: AlexNetLayout,
) -> nn.Sequential:
    fc6 = nn.Linear(in_features, HIDDEN_WIDTH)
    fc7 = nn.Linear(HIDDEN_WIDTH, HIDDEN_WIDTH)
    fc8 = nn.Linear(HIDDEN_WIDTH, num_classes)
    if layout.dropout_on_hidden:
        # §4.2: dropout zeroes the outputs of the hidden neurons of the first two FC layers.
        return nn.Sequential(
            fc6,
            activation_layer(activation),
            nn.Dropout(dropout),
            fc7,
            activation_layer(activation),
            nn.Dropout(dropout),
            fc8,
        )
    return nn.Sequential(
        nn.Dropout(dropout),
        fc6,
        activation_layer(activation),
        nn.Dropout(dropout),
        fc7,
        activation_layer(activation),
        fc8,
    )


def _build_alexnet(
    layout_key: str,
    num_classes: int,
    norm: Norm,
    activation: Activation,
    overlap_pool: bool,
    dropout: float,
    init: InitScheme,
) -> AlexNet:
    return AlexNet(
        ALEXNET_LAYOUTS[layout_key],
        num_classes,
        norm=norm,
        activation=activation,
        overlap_pool=overlap_pool,
        dropout=dropout,
        init=init,
    )


# TODO(#8): the ImageNet builders take column_devices: list[str] to run the two columns
# (groups of conv2, conv4, conv5) on two devices, as in §3.2.


@MODELS.register(
    "alexnet",
    input_size=(3, 227, 227),
    min_input_size=67,
    paper="Krizhevsky et al. 2012 §3, Fig. 2",
    family="alexnet",
)
def alexnet(
    num_classes: int = 1000,
    norm: Norm = "lrn",
    activation: Activation = "relu",
    overlap_pool: bool = True,
    dropout: float = 0.5,
    init: InitScheme = "paper",
) -> AlexNet:
    """AlexNet as published: two columns as grouped convs, LRN, overlapping pools, dropout.

    Deviations: none at 227x227 (an adaptive average pool, the identity there, lets other
    input sizes through).
    """
    return _build_alexnet("paper", num_classes, norm, activation, overlap_pool, dropout, init)


@MODELS.register(
    "alexnet_onetower",
    input_size=(3, 227, 227),
    min_input_size=67,
    paper="Krizhevsky et al. 2012 §3.5, Fig. 2 with the two columns merged",
    family="alexnet",
)
def alexnet_onetower(
    num_classes: int = 1000,
    norm: Norm = "lrn",
    activation: Activation = "relu",
    overlap_pool: bool = True,
    dropout: float = 0.5,
    init: InitScheme = "paper",
) -> AlexNet:
    """AlexNet on one device: the paper's widths with no column split.

    Deviations: conv2, conv4 and conv5 see all input maps (no groups), 62,378,344 parameters.
    """
    return _build_alexnet("one_tower", num_classes, norm, activation, overlap_pool, dropout, init)


@MODELS.register(
    "alexnet_bn",
    input_size=(3, 227, 227),
    min_input_size=67,
    paper="Krizhevsky et al. 2012 §3, Fig. 2, with BatchNorm (Ioffe & Szegedy 2015)",
    family="alexnet",
)
def alexnet_bn(
    num_classes: int = 1000,
    norm: Norm = "bn",
    activation: Activation = "relu",
    overlap_pool: bool = True,
    dropout: float = 0.5,
    init: InitScheme = "paper",
) -> AlexNet:
    """AlexNet (two columns) with BatchNorm, for quick ImageNet-subset training.

    Deviations: BatchNorm after every conv instead of LRN after conv1 and conv2.
    """
    return _build_alexnet("paper", num_classes, norm, activation, overlap_pool, dropout, init)


@MODELS.register(
    "alexnet_owt",
    input_size=(3, 224, 224),
    min_input_size=63,
    paper="Krizhevsky 2014 arXiv:1404.5997 (torchvision's alexnet)",
    family="alexnet",
)
def alexnet_owt(
    num_classes: int = 1000,
    norm: Norm = "none",
    activation: Activation = "relu",
    overlap_pool: bool = True,
    dropout: float = 0.5,
    init: InitScheme = "torchvision",
) -> AlexNet:
    """torchvision's AlexNet: 64-192-384-256-256, one tower, no LRN; its weights load as is.

    Deviations: from the 2012 paper, as listed; dropout before fc6 and fc7, PyTorch default init.
    """
    return _build_alexnet("owt", num_classes, norm, activation, overlap_pool, dropout, init)


@MODELS.register(
    "alexnet_cifar",
    input_size=(3, 32, 32),
    min_input_size=8,
    paper="Krizhevsky et al. 2012 §3 widths, adapted to 32x32",
    family="alexnet",
)
def alexnet_cifar(
    num_classes: int = 10,
    norm: Norm = "lrn",
    activation: Activation = "relu",
    overlap_pool: bool = False,
    dropout: float = 0.5,
    init: InitScheme = "kaiming",
) -> AlexNet:
    """AlexNet's widths (96-256-384-384-256, FC 4096-4096) on 32x32 images.

    Deviations: 3x3 pad-1 convs with stride 1; 2x2 max-pools after conv1, conv2, conv5
    (32 -> 16 -> 8 -> 4, so fc6 sees 256x4x4 = 4096 inputs); one tower (no groups);
    He (kaiming) init, since the paper's N(0, 0.01) barely passes a signal through 3x3 convs;
    36,925,322 parameters at 10 classes.
    """
    return _build_alexnet("cifar", num_classes, norm, activation, overlap_pool, dropout, init)


@MODELS.register(
    "alexnet_bn_cifar",
    input_size=(3, 32, 32),
    min_input_size=8,
    paper="Krizhevsky et al. 2012 §3 widths, adapted to 32x32, with BatchNorm",
    family="alexnet",
)
def alexnet_bn_cifar(
    num_classes: int = 10,
    norm: Norm = "bn",
    activation: Activation = "relu",
    overlap_pool: bool = False,
    dropout: float = 0.5,
    init: InitScheme = "kaiming",
) -> AlexNet:
    """alexnet_cifar with BatchNorm: the quick-to-train CIFAR default.

    Deviations: those of alexnet_cifar, and BatchNorm after every conv instead of LRN.
    """
    return _build_alexnet("cifar", num_classes, norm, activation, overlap_pool, dropout, init)
