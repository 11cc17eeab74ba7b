"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions"
(arXiv:1409.4842), from torchvision for comparison, with the paper's auxiliary classifiers (§5)
and a 32x32 CIFAR stem. In training mode the model returns `AuxOutput`; only
train/losses.py unwraps it.

torchvision is imported when a GoogLeNet is built, not with this module: it pulls in
torch._dynamo, most of the time `classicnets summary alexnet` would otherwise spend."""

import functools
from typing import NamedTuple

import torch
from torch import nn

from classicnets.models.catalog import MODELS


class AuxOutput(NamedTuple):
    """Training-mode output of a net with auxiliary heads.

    aux_logits holds the auxiliary classifiers' logits in network order (after inception 4a,
    then after 4d); §5 adds their losses with weight 0.3.
    """

    logits: torch.Tensor
    aux_logits: tuple[torch.Tensor, ...]


@functools.cache
def _googlenet_class() -> type[nn.Module]:
    import torchvision

    class GoogLeNet(torchvision.models.GoogLeNet):  # type: ignore[misc]
        """torchvision's GoogLeNet, returning AuxOutput, not GoogLeNetOutputs, in training."""

        def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutput:
            logits, aux2, aux1 = self._forward(self._transform_input(x))
            if self.training and self.aux_logits:
                return AuxOutput(logits=logits, aux_logits=(aux1, aux2))
            output: torch.Tensor = logits
            return output

    GoogLeNet.__qualname__ = "GoogLeNet"  # found by pickle through the module __getattr__
    return GoogLeNet


def __getattr__(name: str) -> type[nn.Module]:
    if name == "GoogLeNet":
        return _googlenet_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _googlenet(num_classes: int) -> nn.Module:
    # §5: dropout 40% before the classifier, 70% in the auxiliary heads.
    return _googlenet_class()(
        num_classes=num_classes,
        aux_logits=True,
        transform_input=False,
        init_weights=True,
        dropout=0.4,
        dropout_aux=0.7,
    )


@MODELS.register(
    "googlenet",
    input_size=(3, 224, 224),
    min_input_size=32,  # total stride 32: the last stage sees one pixel
    paper="Szegedy et al. 2014 arXiv:1409.4842 Table 1, §5",
    family="googlenet",
)
def googlenet(num_classes: int = 1000) -> nn.Module:
    """torchvision's GoogLeNet with both auxiliary classifiers; train mode returns AuxOutput.

    Deviations: BatchNorm after every conv and no LRN in the stem (torchvision's layout); the
    "5x5" branch uses a 3x3 conv (torchvision issue #906); the auxiliary heads pool adaptively
    to 4x4 (the paper's 5x5/3 average pool gives 4x4 at 224x224); the pool before inception 5a
    is 2x2/2 rather than 3x3/2; truncated-normal init (std 0.01).
    """
    return _googlenet(num_classes)


@MODELS.register(
    "googlenet_cifar",
    input_size=(3, 32, 32),
    min_input_size=8,  # total stride 8
    paper="Szegedy et al. 2014 arXiv:1409.4842 Table 1, §5, stem adapted to 32x32",
    family="googlenet",
)
def googlenet_cifar(num_classes: int = 10) -> nn.Module:
    """GoogLeNet for 32x32 images: inception 3a/3b run at 16x16, 4a-4e at 8x8, 5a/5b at 4x4.

    Deviations: those of googlenet, and a 3x3 stride-1 first conv with no max-pool after it
    (the 1x1 and 3x3 stem convs and the max-pool before inception 3a stay).
    """
    from torchvision.models.googlenet import BasicConv2d

    model = _googlenet(num_classes)
    stem = BasicConv2d(3, 64, kernel_size=3, stride=1, padding=1)
    nn.init.trunc_normal_(stem.conv.weight, mean=0.0, std=0.01, a=-2, b=2)
    model.conv1 = stem
    model.maxpool1 = nn.Identity()
    return model
