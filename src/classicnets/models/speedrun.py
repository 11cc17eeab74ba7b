"""speedrun_cifar: a small VGG-style CIFAR-10 net built for the fewest training FLOPs to 94%.

The ideas are those of Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU"
(arXiv:2404.00498, §3, "airbench"): three conv groups of two 3x3 convolutions with BatchNorm and
GELU and no hidden fully connected layers, a frozen first layer initialised to whiten 2x2
patches, identity-initialised convolutions, and BatchNorm with only a learned shift that
learns faster than the weights. The rest of airbench's method lives outside the net, in the
recipe configs/speedrun.yaml: Lookahead (optim.lookahead_every), the alternating flip
(data.flip_mode) and the six test-time views (train.tta=translate_flip). The widths
(64, 256, 256) are airbench94's; the code and the patch statistics are ours; the training
recipe is configs/speedrun.yaml.
"""

import math

import torch
from torch import nn

from classicnets.kernels import Conv2d
from classicnets.models.catalog import MODELS

# (width of group 1, 2, 3). Each group: conv 3x3, max-pool 2, BN, GELU, conv 3x3, BN, GELU.
SPEEDRUN_WIDTHS = (64, 256, 256)
PATCH_SIZE = 2  # the whitening layer's kernel: 12 numbers per patch (3 channels x 2 x 2)
WHITENING_EPS = 5.0e-4  # added to each eigenvalue, so near-constant directions stay bounded
LOGIT_SCALE = 1 / 9  # a fixed temperature on the logits; label smoothing acts on these
# arXiv:2404.00498 §3 (scaled BN biases): shifts learn 64x faster than weights (ShiftNorm).
SHIFT_LR_GAIN = 64.0
BN_MOMENTUM = 0.4  # PyTorch's convention: the weight of the new batch in the running stats

# Covariance of 2x2 patches of CIFAR-10's 50,000 training images normalised with CIFAR10_MEAN
# and CIFAR10_STD, over all 31x31 positions; rows and columns in (channel, row, column) order,
# the order of a (out, 3, 2, 2) conv weight. Eigenvalues 6e-4 to 10.06. Recomputed from the
# data by tests/test_speedrun.py (slow).
_CIFAR10_PATCH_COVARIANCE = """
0.99700 0.92508 0.90898 0.85676 0.90805 0.84006 0.82258 0.77370 0.78099 0.72252 0.70697 0.66531
0.92508 0.99626 0.85752 0.90821 0.84016 0.90730 0.77445 0.82180 0.72258 0.78023 0.66595 0.70619
0.90898 0.85752 0.98779 0.91592 0.82646 0.77797 0.89775 0.82981 0.70819 0.66689 0.76966 0.71125
0.85676 0.90821 0.91592 0.98704 0.77739 0.82568 0.82991 0.89698 0.66633 0.70741 0.71131 0.76889
0.90805 0.84016 0.82646 0.77739 0.99801 0.92584 0.90890 0.85676 0.90623 0.84345 0.82734 0.78219
0.84006 0.90730 0.77797 0.82568 0.92584 0.99721 0.85736 0.90806 0.84339 0.90542 0.78267 0.82650
0.82258 0.77445 0.89775 0.82991 0.90890 0.85736 0.98536 0.91325 0.82499 0.78039 0.89120 0.82850
0.77370 0.82180 0.82981 0.89698 0.85676 0.90806 0.91325 0.98454 0.77979 0.82416 0.82844 0.89039
0.78099 0.72258 0.70819 0.66633 0.90623 0.84339 0.82499 0.77979 0.99879 0.93788 0.91925 0.87526
0.72252 0.78023 0.66689 0.70741 0.84345 0.90542 0.78039 0.82416 0.93788 0.99791 0.87579 0.91833
0.70697 0.66595 0.76966 0.71131 0.82734 0.78267 0.89120 0.82844 0.91925 0.87579 0.98070 0.91988
0.66531 0.70619 0.71125 0.76889 0.78219 0.82650 0.82850 0.89039 0.87526 0.91833 0.91988 0.97980
"""


def cifar10_patch_covariance() -> torch.Tensor:
    """The 12x12 patch covariance above, as float64."""
    rows = _CIFAR10_PATCH_COVARIANCE.split("\n")
    values = [[float(v) for v in row.split()] for row in rows if row.strip()]
    return torch.tensor(values, dtype=torch.float64)


def whitening_filters(covariance: torch.Tensor, eps: float = WHITENING_EPS) -> torch.Tensor:
    """(2 * d, 3, k, k) filters from a (d, d) patch covariance, d = 3 * k * k.

    Each eigenvector v with eigenvalue l gives the filter v / sqrt(l + eps), whose output has
    unit variance over the data, and its negative, so that GELU passes both signs.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    filters = (eigenvectors / torch.sqrt(eigenvalues + eps)).T  # (d, d): one filter per row
    side = math.isqrt(covariance.shape[0] // 3)
    filters = filters.reshape(-1, 3, side, side)
    return torch.cat([filters, -filters]).float()


class ShiftNorm(nn.BatchNorm2d):
    """BatchNorm with a learned shift and no learned scale (the next conv's weights can carry
    any scale), whose shift learns SHIFT_LR_GAIN times faster than the other weights.

    The shift is used as `sqrt(gain) * shift`: under SGD a parameter that enters the net
    multiplied by c moves c**2 times as far per step, so this gives the shift a learning rate
    `gain` times optim.lr with one optimizer parameter group, and its weight decay pulls it
    back at the same relative rate as every other parameter.
    """

    def __init__(self, width: int) -> None:
        # arXiv:2404.00498's running statistics follow the batch faster than PyTorch's 0.1.
        super().__init__(width, momentum=BN_MOMENTUM, affine=False)
        self.shift = nn.Parameter(torch.zeros(width))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        gain = math.sqrt(SHIFT_LR_GAIN)
        return super().forward(input) + (gain * self.shift).view(1, -1, 1, 1).to(input.dtype)


class ConvGroup(nn.Sequential):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU (one pool per group)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__(
            Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False),
            nn.MaxPool2d(2),
            ShiftNorm(width),
            nn.GELU(),
            Conv2d(width, width, kernel_size=3, padding=1, bias=False),
            ShiftNorm(width),
            nn.GELU(),
        )


class SpeedrunNet(nn.Module):
    """Whitening conv, three conv groups (32 -> 31 -> 15 -> 7 -> 3), global max-pool, linear."""

    def __init__(
        self, num_classes: int, widths: tuple[int, int, int], stem_bias_epochs: int = 0
    ) -> None:
        super().__init__()
        self.stem_bias_epochs = stem_bias_epochs
        whitening_width = 2 * 3 * PATCH_SIZE**2
        self.features = nn.Sequential(
            nn.Conv2d(3, whitening_width, kernel_size=PATCH_SIZE),  # no padding: 32 -> 31
            nn.GELU(),
            ConvGroup(whitening_width, widths[0]),
            ConvGroup(widths[0], widths[1]),
            ConvGroup(widths[1], widths[2]),
            nn.AdaptiveMaxPool2d(1),  # (N, 256, 3, 3) -> (N, 256, 1, 1)
        )
        self.classifier = nn.Linear(widths[2], num_classes, bias=False)
        self._init_weights()

    def start_epoch(self, epoch: int) -> None:
        """Called by the training loop before each epoch (from 1): arXiv:2404.00498 §3 trains
        the whitening stem's bias for the first epochs only, then freezes it (a parameter
        without a gradient is not updated, by the step or by weight decay)."""
        if self.stem_bias_epochs > 0:
            self.features[0].bias.requires_grad_(epoch <= self.stem_bias_epochs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.flatten(self.features(x), 1)
        logits: torch.Tensor = self.classifier(features) * LOGIT_SCALE
        return logits

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, Conv2d):
                # arXiv:2404.00498 §3 (identity init): over PyTorch's default init, the first
                # in_channels filters start as the identity, so each conv starts near a
                # pass-through of its input.
                with torch.no_grad():
                    nn.init.dirac_(module.weight[: module.in_channels])
            elif isinstance(module, nn.Conv2d) and module.bias is not None:
                # The stem. arXiv:2404.00498 §3 (frozen patch whitening): its weights whiten
                # CIFAR-10's 2x2 patches and stay fixed; its bias trains.
                with torch.no_grad():
                    module.weight.copy_(whitening_filters(cifar10_patch_covariance()))
                    nn.init.zeros_(module.bias)
                module.weight.requires_grad_(False)


def _meta() -> dict[str, object]:
    return {
        "input_size": (3, 32, 32),
        "min_input_size": 9,  # 9 -> 8 -> 4 -> 2 -> 1 through the stem and three pools
        "paper": "ideas of Jordan 2024 arXiv:2404.00498 (airbench); our own net",
        "family": "speedrun",
    }


@MODELS.register("speedrun_cifar", **_meta())
def speedrun_cifar(num_classes: int = 10, stem_bias_epochs: int = 0) -> SpeedrunNet:
    """The speedrun net: widths 64-256-256, 2x2 whitening stem, 32x32 input; with
    `stem_bias_epochs` N > 0 the stem's bias trains for N epochs, then stays fixed.

    Deviations: not a paper's net; see the module docstring for the ideas and their source.
    """
    return SpeedrunNet(num_classes, SPEEDRUN_WIDTHS, stem_bias_epochs)
