"""The model zoo: paper-faithful AlexNet and VGG, ResNet-18 and GoogLeNet for comparison, and
their 32x32 CIFAR adaptations. `build_model(name, num_classes, **options)` is the only entry
point the rest of classicnets uses; importing a family module registers its builders."""

from classicnets.models import alexnet, convnet, googlenet, resnet, speedrun, vgg
from classicnets.models.catalog import (
    MODELS,
    ModelInfo,
    build_model,
    check_input_size,
    list_models,
    model_info,
)
from classicnets.models.googlenet import AuxOutput

__all__ = [
    "MODELS",
    "AuxOutput",
    "ModelInfo",
    "alexnet",
    "build_model",
    "check_input_size",
    "convnet",
    "googlenet",
    "list_models",
    "model_info",
    "resnet",
    "speedrun",
    "vgg",
]
