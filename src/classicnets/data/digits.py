"""The embedded default data set: scikit-learn's bundled 8x8 handwritten digits (1,797 real
scans from the UCI optical digits set), up-sampled to 32x32 RGB. Needs no download."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from classicnets.config import DataConfig
from classicnets.data.datasets import DATASETS, DatasetInfo, SourceSplits, TensorImageDataset
from classicnets.data.splits import stratified_holdout

DIGITS_SIZE = 32
# The test split is 20% of each class, drawn with this fixed seed (never train.seed or
# data.split_seed), so every run on digits is scored on the same 359 images.
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 20120
# Per-channel statistics of the 1,438-image train split at 32x32 (all channels equal: the scans
# are grey); checked by tests/test_data_stats.py::test_digits_constants_match_the_data.
DIGITS_MEAN = (0.3046, 0.3046, 0.3046)
DIGITS_STD = (0.3233, 0.3233, 0.3233)


def digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as uint8 (N, 3, 32, 32) and their labels."""
    from sklearn.datasets import load_digits  # imported here: it takes about a second

    bunch = load_digits()
    # values 0..16 -> 0..255; bilinear up-sampling 8 -> 32 keeps strokes smooth
    small = torch.from_numpy(bunch.images).float().unsqueeze(1) * (255.0 / 16.0)
    large = F.interpolate(small, size=DIGITS_SIZE, mode="bilinear", align_corners=False)
    images = large.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(bunch.target).to(torch.int64)


@DATASETS.register(
    "digits", augment="crop_flip", padding_fraction=0.0625, flip=False, embedded=True
)
def digits(cfg: DataConfig) -> SourceSplits:
    """Digits with a fixed stratified 80/20 train/test split; val is carved from train.

    The default recipe crops with 2-pixel padding but does not flip: digits are not mirror
    symmetric (a mirrored 2, 3, 4, 7 or 9 is no longer that digit).
    """
    images, targets = digits_images()
    ids = [f"digits/{i}" for i in range(len(images))]
    everything = TensorImageDataset(images, targets, ids)
    train, test = stratified_holdout(targets, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    info = DatasetInfo(
        name="digits",
        classes=[str(digit) for digit in range(10)],
        image_size=DIGITS_SIZE,
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
    )
    return SourceSplits(everything.subset(train), everything.subset(test), info, "embedded")
