"""The "four-layer convolutional network" on CIFAR-10 that Krizhevsky et al. 2012 use to show
that ReLUs train faster than tanh units (§3.1, Fig. 1) and that response normalisation helps
(§3.3, 13% -> 11% test error). The paper gives no layer table; the layers here are those of
cuda-convnet's example net layers-18pct.cfg (Krizhevsky's own code), three conv layers and one
fully connected layer."""

import torch
from torch import nn

from classicnets.kernels import AdaptiveAvgPool2d, Conv2d
from classicnets.models.blocks import (
    Activation,
    InitScheme,
    Norm,
    activation_layer,
    init_kaiming,
    init_xavier,
    paper_lrn,
    reset_batchnorm,
    weighted_layers,
)
from classicnets.models.catalog import MODELS

# layers-18pct.cfg: three 5x5 pad-2 convs (32, 32, 64 maps); pools max, avg, avg; fc 10.
CONV_WIDTHS = (32, 32, 64)
POOL_KINDS = ("max", "avg", "avg")
NORM_AFTER = (0, 1)  # normalisation follows the first two pools
# layers-18pct.cfg initW: Gaussian std per conv layer and for the fc layer; biases zero.
CUDA_CONVNET_INIT_STD = (1e-4, 1e-2, 1e-2, 1e-2)
POOLED_SIZE = 4  # 32 -> 16 -> 8 -> 4


class ConvNet4(nn.Module):
    """Three conv + pool stages and a linear classifier (cuda-convnet layers-18pct)."""

    def __init__(
        self,
        num_classes: int,
        norm: Norm,
        activation: Activation,
        overlap_pool: bool,
        init: InitScheme,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for index, (width, pool_kind) in enumerate(zip(CONV_WIDTHS, POOL_KINDS, strict=True)):
            layers.append(Conv2d(in_channels, width, kernel_size=5, padding=2))
            if norm == "bn":
                layers.append(nn.BatchNorm2d(width))  # not in the paper or cuda-convnet
            layers.append(activation_layer(activation))
            layers.append(_pool(pool_kind, overlap_pool))
            if norm == "lrn" and index in NORM_AFTER:
                layers.append(paper_lrn())
            in_channels = width
        self.features = nn.Sequential(*layers)
        # Identity at 32x32; lets other sizes through.
        self.avgpool = AdaptiveAvgPool2d(POOLED_SIZE)
        self.classifier = nn.Linear(in_channels * POOLED_SIZE**2, num_classes)
        self._init_weights(init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        logits: torch.Tensor = self.classifier(torch.flatten(x, 1))  # (N, 64, 4, 4) -> (N, 1024)
        return logits

    def _init_weights(self, init: InitScheme) -> None:
        if init == "paper":
            # The paper states no init for this net; use cuda-convnet's layers-18pct values.
            layers = weighted_layers(self)
            for layer, std in zip(layers, CUDA_CONVNET_INIT_STD, strict=True):
                nn.init.normal_(layer.weight, 0.0, std)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            reset_batchnorm(self)
        elif init == "kaiming":
            init_kaiming(self)
        elif init == "xavier":
            init_xavier(self)
        elif init == "torchvision":
            for layer in weighted_layers(self):
                layer.reset_parameters()
            reset_batchnorm(self)
        else:
            raise ValueError(f"unknown init scheme {init!r}")


def _pool(kind: str, overlap_pool: bool) -> nn.Module:
    # §3.4 / layers-18pct: 3x3 windows with stride 2; ceil_mode keeps cuda-convnet's output
    # size (32 -> 16). The non-overlapping ablation uses 2x2 windows (same output size).
    kernel_size = 3 if overlap_pool else 2
    if kind == "max":
        return nn.MaxPool2d(kernel_size, stride=2, ceil_mode=True)
    return nn.AvgPool2d(kernel_size, stride=2, ceil_mode=True)


@MODELS.register(
    "convnet4_cifar",
    input_size=(3, 32, 32),
    min_input_size=8,
    paper="Krizhevsky et al. 2012 §3.1 Fig. 1, §3.3; layers from cuda-convnet layers-18pct",
    family="convnet",
)
def convnet4_cifar(
    num_classes: int = 10,
    norm: Norm = "lrn",
    activation: Activation = "relu",
    overlap_pool: bool = True,
    init: InitScheme = "kaiming",
) -> ConvNet4:
    """The paper's four-layer CIFAR-10 net (Fig. 1, §3.3), with cuda-convnet's layer config.

    The exact layers come from cuda-convnet's layers-18pct.cfg, not from the paper's text.
    Deviations: the paper's cross-map LRN (§3.3: k=2, n=5, alpha=1e-4, beta=0.75) after pools
    1 and 2, where layers-18pct uses a within-map 3x3 normalisation; He (kaiming) init by
    default. init="paper" gives layers-18pct's Gaussian stds (1e-4, 1e-2, 1e-2, 1e-2), as the
    paper states none; with them the ReLU net did not leave chance level in 400 SGD steps at
    lr 0.01 (cuda-convnet's summed gradients act like a ~13x larger lr), kaiming reached 54%.
    """
    return ConvNet4(
        num_classes, norm=norm, activation=activation, overlap_pool=overlap_pool, init=init
    )
