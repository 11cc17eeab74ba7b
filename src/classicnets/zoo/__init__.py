"""Pretrained torchvision weights ported into the registry's models, and their evaluation on
ImageNet beside the published accuracies."""
