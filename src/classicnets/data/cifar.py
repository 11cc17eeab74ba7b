"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny
Images"), read straight from the official python-pickle or binary release.

Files are checked by content (shape, dtype, label range), not by md5, so a re-packed but valid
copy loads. Pickles are read with an unpickler that only builds numpy arrays.
"""

from __future__ import annotations

import codecs
import io
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from classicnets.config import DataConfig
from classicnets.data.datasets import (
    DATASETS,
    DatasetInfo,
    SourceSplits,
    TensorImageDataset,
    folder_has,
    resolve_root,
)
from classicnets.errors import UserError

log = logging.getLogger(__name__)

CIFAR_PIXELS = 3 * 32 * 32
# Train-split statistics on the [0, 1] scale (population std over all pixels of the 50,000
# training images); `classicnets data stats cifar10` reproduces them to 4 decimals. The std
# widely copied as (0.2023, 0.1994, 0.2010) is another quantity: the mean over images of each
# image's own std. Checked against the data by tests/test_data_stats.py (slow).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class CifarLayout:
    """One on-disk release: folder name, file names and where the label sits."""

    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    is_binary: bool
    label_key: str = "labels"  # pickle: the dict key holding the labels
    names_key: str = "label_names"  # pickle meta: the key holding the class names
    label_bytes: int = 1  # binary: label bytes before each image
    label_byte: int = 0  # binary: which of those bytes is the label we use


LAYOUTS: dict[str, tuple[CifarLayout, ...]] = {
    "cifar10": (
        CifarLayout(
            "cifar-10-batches-py",
            tuple(f"data_batch_{i}" for i in range(1, 6)),
            "test_batch",
            "batches.meta",
            is_binary=False,
        ),
        CifarLayout(
            "cifar-10-batches-bin",
            tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            "test_batch.bin",
            "batches.meta.txt",
            is_binary=True,
        ),
    ),
    "cifar100": (
        CifarLayout(
            "cifar-100-python",
            ("train",),
            "test",
            "meta",
            is_binary=False,
            label_key="fine_labels",
            names_key="fine_label_names",
        ),
        # each record: coarse label byte, fine label byte, 3072 pixel bytes
        CifarLayout(
            "cifar-100-binary",
            ("train.bin",),
            "test.bin",
            "fine_label_names.txt",
            is_binary=True,
            label_bytes=2,
            label_byte=1,
        ),
    ),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds dicts, lists and numpy arrays; refuses any other global (no code execution)."""

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # protocol-2 pickles written by Python 3: bytes
        ("numpy.core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
        ("numpy.core.multiarray", "scalar"): np.float64(0).__reduce__()[0],
        ("numpy._core.multiarray", "scalar"): np.float64(0).__reduce__()[0],
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return self._ALLOWED[(module, name)]


def _read_pickle(path: Path) -> dict[str, Any]:
    try:
        # latin1 reads the Python 2 pickles of the official release (bytes keys -> str)
        content = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except FileNotFoundError:
        raise UserError(f"missing file {path}") from None
    except Exception as error:  # unpickling raises many types for damaged files
        raise UserError(
            f"{path} is truncated or not a CIFAR pickle ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(content, dict):
        raise UserError(f"{path} should hold a dict, found {type(content).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in content.items()}


def _check_images(data: Any, path: Path) -> np.ndarray:
    array = np.asarray(data)
    if array.ndim == 4 and array.shape[1:] == (3, 32, 32):
        array = array.reshape(len(array), CIFAR_PIXELS)
    if array.ndim != 2 or array.shape[1] != CIFAR_PIXELS:
        raise UserError(f"{path}: images must have shape (N, 3072), found {array.shape}")
    if len(array) == 0:
        raise UserError(f"{path}: holds no images (a truncated or re-packed batch?)")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255:
            raise UserError(f"{path}: pixels must be integers 0..255, found {array.dtype}")
        array = array.astype(np.uint8)
    return array


def _check_labels(labels: Any, count: int, num_classes: int, path: Path) -> np.ndarray:
    array = np.asarray(labels).reshape(-1)
    if len(array) != count:
        raise UserError(f"{path}: {count} images but {len(array)} labels")
    if count and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0):
        raise UserError(f"{path}: labels must be integers in 0..{num_classes - 1}")
    if count and array.max() >= num_classes:
        raise UserError(
            f"{path}: label {int(array.max())} is out of range for {num_classes} classes"
        )
    return array.astype(np.int64)


def _read_pickle_batch(path: Path, layout: CifarLayout, num_classes: int) -> tuple[Any, Any]:
    batch = _read_pickle(path)
    if "data" not in batch or layout.label_key not in batch:
        raise UserError(
            f"{path}: expected keys 'data' and {layout.label_key!r}, found {sorted(batch)}"
        )
    images = _check_images(batch["data"], path)
    return images, _check_labels(batch[layout.label_key], len(images), num_classes, path)


def _read_binary_batch(path: Path, layout: CifarLayout, num_classes: int) -> tuple[Any, Any]:
    record = layout.label_bytes + CIFAR_PIXELS
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if len(raw) == 0 or len(raw) % record:
        raise UserError(f"{path}: size {len(raw)} is not a whole number of {record}-byte records")
    rows = raw.reshape(-1, record)
    images = rows[:, layout.label_bytes :]
    labels = _check_labels(rows[:, layout.label_byte], len(rows), num_classes, path)
    return images, labels


def _class_names(folder: Path, layout: CifarLayout, num_classes: int) -> list[str]:
    path = folder / layout.meta_file
    if layout.is_binary:
        try:
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read class names from {path}: {error}") from None
    else:
        meta = _read_pickle(path)
        names = [str(name) for name in meta.get(layout.names_key, [])]
    if len(names) != num_classes:
        raise UserError(f"{path}: expected {num_classes} class names, found {len(names)}")
    return names


def find_cifar(root: Path, name: str) -> tuple[Path, CifarLayout] | None:
    """The folder holding the release: root/<release folder>, or root itself."""
    for layout in LAYOUTS[name]:
        needed = (*layout.train_files, layout.test_file, layout.meta_file)
        for folder in (root / layout.folder, root):
            if folder_has(folder, needed):
                return folder, layout
    return None


def _download(root: Path, name: str) -> None:
    import torchvision

    dataset_class = {
        "cifar10": torchvision.datasets.CIFAR10,
        "cifar100": torchvision.datasets.CIFAR100,
    }
    log.info("%s: downloading to %s with torchvision", name, root)
    try:
        for train in (True, False):
            dataset_class[name](root=str(root), train=train, download=True)
    except Exception as error:  # URLError, HTTPError, OSError, RuntimeError (checksum)
        raise UserError(f"downloading {name} to {root} failed: {error}") from None


def read_cifar(
    cfg: DataConfig, name: str, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> SourceSplits:
    root = resolve_root(cfg)
    num_classes = 10 if name == "cifar10" else 100
    found = find_cifar(root, name)
    if found is None and cfg.download:
        _download(root, name)
        found = find_cifar(root, name)
    if found is None:
        folders = " or ".join(str(root / layout.folder) for layout in LAYOUTS[name])
        raise UserError(
            f"{name} not found: looked in {folders} and in {root} itself; point data.root at "
            f"the folder that holds it (--set data.root=...) or fetch it with "
            f"--set data.download=true when online"
        )
    folder, layout = found
    read_batch = _read_binary_batch if layout.is_binary else _read_pickle_batch
    train = [read_batch(folder / file, layout, num_classes) for file in layout.train_files]
    test = read_batch(folder / layout.test_file, layout, num_classes)
    classes = _class_names(folder, layout, num_classes)
    info = DatasetInfo(name=name, classes=classes, image_size=32, mean=mean, std=std)
    return SourceSplits(
        _to_dataset([images for images, _ in train], [labels for _, labels in train], "train"),
        _to_dataset([test[0]], [test[1]], "test"),
        info,
        str(folder),
    )


def _to_dataset(images: list[Any], labels: list[Any], split: str) -> TensorImageDataset:
    # (N, 3072) rows are channel-major: 1024 red, 1024 green, 1024 blue -> (N, 3, 32, 32)
    pixels = torch.from_numpy(np.concatenate(images)).reshape(-1, 3, 32, 32)
    targets = torch.from_numpy(np.concatenate(labels))
    return TensorImageDataset(pixels, targets, [f"{split}/{i}" for i in range(len(pixels))])


@DATASETS.register(
    "cifar10", augment="crop_flip", padding_fraction=0.125, flip=True, embedded=False
)
def cifar10(cfg: DataConfig) -> SourceSplits:
    """CIFAR-10: 50,000 train and 10,000 test 32x32 images in 10 classes."""
    return read_cifar(cfg, "cifar10", CIFAR10_MEAN, CIFAR10_STD)


@DATASETS.register(
    "cifar100", augment="crop_flip", padding_fraction=0.125, flip=True, embedded=False
)
def cifar100(cfg: DataConfig) -> SourceSplits:
    """CIFAR-100 (fine labels): 50,000 train and 10,000 test 32x32 images in 100 classes."""
    return read_cifar(cfg, "cifar100", CIFAR100_MEAN, CIFAR100_STD)
