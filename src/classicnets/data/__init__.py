"""Data sets, transforms, statistics and loaders. Never imports models/ or train/.

Data sets (registered in DATASETS, chosen by data.name): digits (embedded), cifar10, cifar100,
imagenette, imagefolder, imagenet, synthetic. `build_splits` reads one; `build_loader` feeds a
split to training or evaluation through the Loader contract.
"""

# Importing the data set modules registers them.
from classicnets.data import cifar, digits, folders, imagenet, synthetic
from classicnets.data.datasets import (
    DATASETS,
    DatasetInfo,
    DataSplits,
    FileImageDataset,
    ImageDataset,
    TensorImageDataset,
    sample_ids,
)
from classicnets.data.loaders import Loader, build_loader, loader_from_transform
from classicnets.data.splits import build_splits
from classicnets.data.transforms import eval_transform

__all__ = [
    "DATASETS",
    "DataSplits",
    "DatasetInfo",
    "FileImageDataset",
    "ImageDataset",
    "Loader",
    "TensorImageDataset",
    "build_loader",
    "build_splits",
    "cifar",
    "digits",
    "eval_transform",
    "folders",
    "imagenet",
    "loader_from_transform",
    "sample_ids",
    "synthetic",
]
