"""Layers and weight-init schemes shared by the AlexNet, VGG and four-layer CIFAR families:
the local response normalisation of Krizhevsky et al. 2012 (§3.3), the activation and norm
knobs, and the init schemes the papers and torchvision use."""

from torch import nn

from classicnets.config import Activation, DropoutPosition, InitScheme, LrnAlpha, Norm
from classicnets.kernels import LocalResponseNorm

__all__ = ["Activation", "DropoutPosition", "InitScheme", "LrnAlpha", "Norm"]

# AlexNet §3.3: k=2, n=5, alpha=1e-4, beta=0.75 (VGG's A-LRN uses the same, VGG §2.1).
LRN_SIZE = 5
LRN_ALPHA = 1e-4
LRN_BETA = 0.75
LRN_K = 2.0


def paper_lrn(groups: int = 1, lrn_alpha: LrnAlpha = "paper") -> LocalResponseNorm:
    """AlexNet §3.3 response normalisation, b = a / (k + alpha * sum(a^2))^beta over n maps;
    with `groups`, over the maps of one group (one GPU's column) only. lrn_alpha="pytorch"
    passes alpha=1e-4 to PyTorch's form as many ports do, which divides it by n: 2e-5 here."""
    # PyTorch divides alpha by n inside the sum, so pass n * alpha to get the paper's formula.
    alpha = LRN_SIZE * LRN_ALPHA if lrn_alpha == "paper" else LRN_ALPHA
    return LocalResponseNorm(size=LRN_SIZE, alpha=alpha, beta=LRN_BETA, k=LRN_K, groups=groups)


def activation_layer(activation: Activation) -> nn.Module:
    """ReLU (AlexNet §3.1) or the saturating tanh it is compared against in Fig. 1."""
    if activation == "relu":
        return nn.ReLU(inplace=True)
    if activation == "tanh":
        return nn.Tanh()
    raise ValueError(f"activation must be relu or tanh, got {activation!r}")


def weighted_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The conv and fully connected layers of `model`, in forward-definition order."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def reset_batchnorm(model: nn.Module) -> None:
    """BatchNorm starts as the identity: scale 1, shift 0 (Ioffe & Szegedy 2015)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def init_normal(model: nn.Module, std: float) -> None:
    """Zero-mean Gaussian weights with a fixed std and zero biases (AlexNet §5, VGG §3.1)."""
    for layer in weighted_layers(model):
        nn.init.normal_(layer.weight, mean=0.0, std=std)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    reset_batchnorm(model)


def init_default(model: nn.Module) -> None:
    """PyTorch's own layer init (kaiming-uniform with a=sqrt(5), uniform biases), which a model
    keeps when its code sets none: what torchvision's AlexNet and many ports do."""
    for layer in weighted_layers(model):
        layer.reset_parameters()
    reset_batchnorm(model)


def init_kaiming(model: nn.Module) -> None:
    """He et al. 2015 (arXiv:1502.01852): N(0, 2 / fan_in) weights, zero biases."""
    for layer in weighted_layers(model):
        nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    reset_batchnorm(model)


def init_xavier(model: nn.Module) -> None:
    """Glorot & Bengio 2010: uniform weights with variance 2 / (fan_in + fan_out), zero biases."""
    for layer in weighted_layers(model):
        nn.init.xavier_uniform_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    reset_batchnorm(model)
