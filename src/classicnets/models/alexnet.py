"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks" (NIPS 2012), the paper's two-column net and its relatives: the one-tower
variant, torchvision's "one weird trick" layout (arXiv:1404.5997) and 32x32 CIFAR adaptations.
Every variant is one `AlexNet` class built from a small layout table; `split_columns` puts the
two columns of the paper's net on two devices (`TwoColumnAlexNet`)."""

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from classicnets.errors import UserError
from classicnets.models.blocks import (
    Activation,
    AdaptiveAvgPool2d,
    Dropout,
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
from classicnets.models.conv import Conv2d
from classicnets.models.lrn import LocalResponseNorm


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
        self.avgpool = AdaptiveAvgPool2d(layout.pooled_size)
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
    # §3.2: the paper's layout keeps half of every layer on each GPU, and each GPU normalised
    # its own maps (§3.3); grouped LRN does the same on one device.
    columns = 2 if any(conv.groups == 2 for conv in layout.convs) else 1
    for index, conv in enumerate(layout.convs):
        layers.append(
            Conv2d(
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
            layers.append(paper_lrn(groups=columns))  # §3.3: applied after the ReLU
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
            Dropout(dropout),
            fc7,
            activation_layer(activation),
            Dropout(dropout),
            fc8,
        )
    return nn.Sequential(
        Dropout(dropout),
        fc6,
        activation_layer(activation),
        Dropout(dropout),
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


# §3.2: the two columns, one per GPU. "The GPUs communicate only in certain layers": conv3
# and the fully connected layers take input from both columns; conv2, conv4 and conv5 only
# from their own (the grouped convs above).
TWO_COLUMN_MODELS = ("alexnet", "alexnet_bn")  # the registered models with the column split
COLUMN_GROUPS = (1, 2, 1, 2, 2)  # the convs' groups in the paper layout
STATE_NAMES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class AlexNetColumn(nn.Module):
    """One GPU's half of AlexNet: conv stages between exchanges, and its half of fc6, fc7."""

    def __init__(self, stages: list[nn.Sequential], hidden: list[nn.Sequential]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.hidden = nn.ModuleList(hidden)


class TwoColumnAlexNet(nn.Module):
    """A two-column AlexNet with each column on its own device, as trained on two GPUs (§3.2).

    Built from a grouped AlexNet by `split_columns`, it computes the same function, and its
    state_dict has the grouped model's keys and shapes, so checkpoints load into either.
    Activations cross between devices before conv3, fc6, fc7 and fc8, as in the paper; each
    column normalises its own maps (§3.3), as the grouped model's LRN (groups=2) does.
    """

    def __init__(self, grouped: AlexNet) -> None:
        super().__init__()
        features, classifier = list(grouped.features), list(grouped.classifier)
        convs = [i for i, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
        if tuple(getattr(features[i], "groups", 0) for i in convs) != COLUMN_GROUPS:
            raise UserError("only the two-column AlexNet (alexnet, alexnet_bn) has columns")
        # The columns exchange maps once in the conv layers: before conv3, which sees all maps.
        stages = [range(0, convs[2]), range(convs[2], len(features))]
        linears = [i for i, layer in enumerate(classifier) if isinstance(layer, nn.Linear)]
        blocks = [range(linears[0], linears[1]), range(linears[1], linears[2])]
        with torch.device("meta"):  # shapes only: the grouped weights are loaded below
            self.columns = nn.ModuleList(
                AlexNetColumn(
                    [nn.Sequential(*(_half(features[i]) for i in span)) for span in stages],
                    [nn.Sequential(*(_half(classifier[i]) for i in span)) for span in blocks],
                )
                for _ in range(2)
            )
        self.columns.to_empty(device=next(grouped.parameters()).device)
        self.avgpool = grouped.avgpool
        self.fc8 = classifier[linears[2]]
        # (grouped layer name, the names of its halves), in the grouped state_dict's order
        self.layer_pairs: list[tuple[str, tuple[str, ...]]] = []
        for grouped_name, layers, spans, part in (
            ("features", features, stages, "stages"),
            ("classifier", classifier, blocks, "hidden"),
        ):
            for stage, span in enumerate(spans):
                for position, index in enumerate(span):
                    if next(layers[index].parameters(), None) is not None:
                        halves = tuple(f"columns.{c}.{part}.{stage}.{position}" for c in (0, 1))
                        self.layer_pairs.append((f"{grouped_name}.{index}", halves))
        self.layer_pairs.append((f"classifier.{linears[2]}", ("fc8",)))
        self.register_state_dict_post_hook(_merge_columns)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_split_into_columns)  # type: ignore[no-untyped-call]
        self.load_state_dict(grouped.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = cast(list[AlexNetColumn], list(self.columns))
        devices = [next(column.parameters()).device for column in columns]
        maps = [x.to(device) for device in devices]  # every GPU reads the whole image
        maps = [column.stages[0](m) for column, m in zip(columns, maps, strict=True)]
        maps = _gather(maps, devices)
        maps = [column.stages[1](m) for column, m in zip(columns, maps, strict=True)]
        # (N, 128, 6, 6) per column -> (N, 4608); each fc6 neuron sees both columns' 9216
        flat = [torch.flatten(self.avgpool(m), 1) for m in maps]
        for block in range(2):  # fc6, fc7 (§3.2: FC neurons see the whole layer below)
            flat = _gather(flat, devices)
            flat = [column.hidden[block](m) for column, m in zip(columns, flat, strict=True)]
        logits: torch.Tensor = self.fc8(_gather(flat, devices[:1])[0])
        return logits.to(x.device)


def _merge_columns(module: nn.Module, state: dict[str, Any], prefix: str, _: object) -> None:
    """state_dict hook: the columns' halves become the grouped model's tensors."""
    for grouped, halves in cast(TwoColumnAlexNet, module).layer_pairs:
        for name in STATE_NAMES:
            keys = [f"{prefix}{half}.{name}" for half in halves]
            if keys[0] in state:
                values = [state.pop(key) for key in keys]
                merged = values[0]
                if len(values) > 1 and merged.dim() > 0:  # not num_batches_tracked
                    merged = torch.cat([value.to(merged.device) for value in values])
                state[f"{prefix}{grouped}.{name}"] = merged


def _split_into_columns(module: nn.Module, state: dict[str, Any], prefix: str, *_: object) -> None:
    """load_state_dict hook: the grouped model's tensors are cut into the columns' halves."""
    for grouped, halves in cast(TwoColumnAlexNet, module).layer_pairs:
        for name in STATE_NAMES:
            key = f"{prefix}{grouped}.{name}"
            if key in state:
                value = state.pop(key)
                pieces = value.chunk(len(halves)) if value.dim() > 0 else [value] * 2
                for half, piece in zip(halves, pieces, strict=False):
                    state[f"{prefix}{half}.{name}"] = piece


def _half(layer: nn.Module) -> nn.Module:
    """A layer shaped like one column's half of `layer` (its weights are loaded after)."""
    if isinstance(layer, nn.Conv2d):
        kernel, stride, padding = layer.kernel_size[0], layer.stride[0], layer.padding
        return Conv2d(
            layer.in_channels // layer.groups,
            layer.out_channels // 2,
            kernel,
            stride=stride,
            padding=padding[0] if isinstance(padding, tuple) else padding,
            bias=layer.bias is not None,
        )
    if isinstance(layer, nn.BatchNorm2d):
        return nn.BatchNorm2d(layer.num_features // 2, eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features // 2, bias=layer.bias is not None)
    if isinstance(layer, LocalResponseNorm):  # one group per column
        return LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)
    return copy.deepcopy(layer)  # activations, pools, dropout: no state


def _gather(maps: list[torch.Tensor], devices: list[torch.device]) -> list[torch.Tensor]:
    """Both columns' maps, concatenated along channels, on each of `devices`."""
    return [torch.cat([m.to(device) for m in maps], dim=1) for device in devices]


def split_columns(grouped: AlexNet, devices: Sequence[torch.device]) -> TwoColumnAlexNet:
    """`grouped` (alexnet or alexnet_bn) as two columns on `devices` (§3.2); fc8 joins the
    first. Inputs may be on any device; the logits come back on the input's device."""
    if len(devices) != 2:
        raise UserError(
            f"model.column_devices takes two devices, one per column; got {len(devices)}"
        )
    model = TwoColumnAlexNet(grouped)
    for column, device in zip(model.columns, devices, strict=True):
        column.to(device)
    model.fc8.to(devices[0])
    return model


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
