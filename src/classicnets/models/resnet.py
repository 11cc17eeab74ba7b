"""ResNet-18: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition"
(arXiv:1512.03385), taken from torchvision for comparison with AlexNet and VGG, plus the
common 32x32 CIFAR adaptation of its stem. torchvision is imported when a ResNet is built
(models/googlenet.py says why)."""

from torch import nn

from classicnets.models.catalog import MODELS


@MODELS.register(
    "resnet18",
    input_size=(3, 224, 224),
    min_input_size=32,  # total stride 32: the last stage sees one pixel
    paper="He et al. 2015 arXiv:1512.03385 Table 1 (18-layer)",
    family="resnet",
)
def resnet18(num_classes: int = 1000) -> nn.Module:
    """torchvision's ResNet-18, randomly initialised.

    Deviations: projection shortcuts (option B) where the width grows, as torchvision does;
    zero-initialised BatchNorm is not used.
    """
    import torchvision

    model: nn.Module = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    return model


@MODELS.register(
    "resnet18_cifar",
    input_size=(3, 32, 32),
    min_input_size=8,  # total stride 8
    paper="He et al. 2015 arXiv:1512.03385 Table 1 (18-layer), stem adapted to 32x32",
    family="resnet",
)
def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    """ResNet-18 for 32x32 images: a community variant, not the paper's CIFAR ResNet-20/32/56.

    Deviations: 3x3 stride-1 conv stem (64 maps) and no max-pool, so stage 1 runs at 32x32;
    projection shortcuts (option B), as torchvision does.
    """
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    resnet: nn.Module = model
    return resnet
