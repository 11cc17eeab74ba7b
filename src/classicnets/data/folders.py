"""Image folders: root/{train,val}/<class>/<image>, as torchvision's ImageFolder reads them,
and Imagenette (Howard 2019, github.com/fastai/imagenette), ten easy ImageNet classes in that
layout with an optional noisy-label CSV."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from classicnets.config import DataConfig
from classicnets.data.datasets import (
    DATASETS,
    DatasetInfo,
    FileImageDataset,
    SourceSplits,
    resolve_root,
)
from classicnets.data.label_csv import label_csv_samples
from classicnets.errors import UserError

log = logging.getLogger(__name__)

# torchvision.datasets.folder.IMG_EXTENSIONS
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# torchvision.transforms._presets.ImageClassification defaults: ImageNet train statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Imagenette's wnid folders and their readable names (github.com/fastai/imagenette README).
IMAGENETTE_CLASSES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
IMAGENETTE_FOLDERS = ("imagenette2", "imagenette2-320", "imagenette2-160")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


class FileIndex:
    """What one split's indexing has seen, by real path (links resolved): a folder reached
    twice (a link loop, or a link to a folder already walked) is walked once, and a file
    reached twice is indexed once."""

    def __init__(self) -> None:
        self.real_paths: set[str] = set()
        self.real_folders: set[str] = set()
        self.repeated_files = 0
        self.repeated_folders = 0

    def reserve(self, split_dir: Path, class_names: Sequence[str]) -> None:
        """Mark the split and its class folders as walked: a link inside a class folder to
        an ancestor (a loop) or to another class's folder is then never followed."""
        self.real_folders.add(os.path.realpath(split_dir))
        self.real_folders.update(os.path.realpath(split_dir / name) for name in class_names)

    def list_images(self, folder: Path) -> tuple[list[str], list[str]]:
        """Image files under `folder` (recursive, each folder's files sorted, then its
        subfolders in sorted order) and the other files found there."""
        images: list[str] = []
        others: list[str] = []
        real = os.path.realpath(folder)
        self.real_folders.add(real)
        self._walk(str(folder), real, images, others)
        return images, others

    def _walk(self, shown: str, real: str, images: list[str], others: list[str]) -> None:
        with os.scandir(shown) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        folders = []
        for entry in entries:
            # scandir knows links without a stat; only links need resolving
            target = os.path.realpath(entry.path) if entry.is_symlink() else f"{real}/{entry.name}"
            if entry.is_dir():
                folders.append((entry.path, target))
            elif target in self.real_paths:
                self.repeated_files += 1
            else:
                self.real_paths.add(target)
                (images if is_image_file(entry.name) else others).append(entry.path)
        for path, target in folders:
            if target in self.real_folders:
                self.repeated_folders += 1
                continue
            self.real_folders.add(target)
            self._walk(path, target, images, others)

    def warn_repeats(self, split_dir: Path) -> None:
        if self.repeated_files or self.repeated_folders:
            log.warning(
                "%s: %d files and %d folders are reached twice through links; each is indexed once",
                split_dir,
                self.repeated_files,
                self.repeated_folders,
            )


def warn_shared_files(train: FileIndex, test: FileIndex, test_dir: Path) -> int:
    """Warn when the same files (by real path) are in train and the held-out split."""
    shared = train.real_paths & test.real_paths
    if shared:
        log.warning(
            "%s: %d files are also in the training split (e.g. %s): its scores would count "
            "images the model trained on",
            test_dir,
            len(shared),
            min(shared),
        )
    return len(shared)


def class_folders(split_dir: Path) -> list[str]:
    return sorted(
        entry.name for entry in os.scandir(split_dir) if entry.is_dir() and entry.name[0] != "."
    )


def loose_images(split_dir: Path) -> list[str]:
    """Image files directly in a split folder, i.e. not sorted into class folders."""
    return sorted(e.path for e in os.scandir(split_dir) if e.is_file() and is_image_file(e.name))


def index_split(
    split_dir: Path, classes: Sequence[str], index: FileIndex | None = None
) -> list[tuple[str, int]]:
    """(path, label) for every image in split_dir/<class>/, labels indexing `classes`.

    Non-image files are skipped with one warning; an empty class folder, a class not in
    `classes`, or an empty split is a UserError. `index` collects the real paths indexed.
    """
    index = index if index is not None else FileIndex()
    if not split_dir.is_dir():
        raise UserError(f"missing folder {split_dir}")
    present = class_folders(split_dir)
    loose = loose_images(split_dir)
    if not present:
        detail = f" ({len(loose)} images lie loose in it)" if loose else ""
        raise UserError(f"{split_dir} has no class folders{detail}; expected {split_dir}/<class>/")
    unknown = [name for name in present if name not in classes]
    if unknown:
        raise UserError(f"{split_dir}/{unknown[0]} is not one of the train classes")
    if loose:
        log.warning("%s: ignoring %d images not inside a class folder", split_dir, len(loose))
    label_of = {name: label for label, name in enumerate(classes)}
    index.reserve(split_dir, present)
    samples: list[tuple[str, int]] = []
    skipped: list[str] = []
    for name in present:
        repeats = index.repeated_files
        images, others = index.list_images(split_dir / name)
        if not images:
            linked = " of its own (its files are links to ones indexed already)"
            detail = linked if index.repeated_files > repeats else f" ({IMAGE_EXTENSIONS})"
            raise UserError(f"class folder {split_dir / name} has no images{detail}")
        samples += [(path, label_of[name]) for path in images]
        skipped += others
    if skipped:
        log.warning(
            "%s: skipped %d files that are not images (e.g. %s)",
            split_dir,
            len(skipped),
            skipped[0],
        )
    index.warn_repeats(split_dir)
    return samples


def apply_label_file(
    samples: list[tuple[str, int]], dataset_root: Path, cfg: DataConfig, classes: Sequence[str]
) -> list[tuple[str, int]]:
    """Relabel training images from a CSV (Imagenette's noisy_imagenette.csv layout).

    The CSV has a `path` column relative to the data set folder and the column named by
    data.noisy_labels holding class folder names (wnids); images not listed keep their label.
    """
    path = Path(cfg.label_file).expanduser()
    if not path.is_absolute() and not path.exists():
        path = dataset_root / path
    try:
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"data.label_file: cannot read {path}: {error}") from None
    columns = list(rows[0]) if rows else []
    if "path" not in columns or cfg.noisy_labels not in columns:
        raise UserError(
            f"data.label_file {path} needs columns 'path' and {cfg.noisy_labels!r} "
            f"(data.noisy_labels); found {', '.join(columns) or 'no rows'}"
        )
    label_of = {name: index for index, name in enumerate(classes)}
    relabel: dict[str, int] = {}
    for row in rows:
        name = row[cfg.noisy_labels]
        if name not in label_of:
            raise UserError(f"{path}: label {name!r} in {row['path']} is not a class folder name")
        relabel[os.path.normpath(dataset_root / row["path"])] = label_of[name]
    matched = sum(os.path.normpath(p) in relabel for p, _ in samples)
    if matched < len(samples):
        log.warning(
            "%s: %d training images are not listed; they keep their folder label",
            path.name,
            len(samples) - matched,
        )
    changed = sum(relabel.get(os.path.normpath(p), y) != y for p, y in samples)
    log.info(
        "%s: column %s relabels %d of %d training images",
        path.name,
        cfg.noisy_labels,
        changed,
        len(samples),
    )
    return [(p, relabel.get(os.path.normpath(p), y)) for p, y in samples]


def read_image_folder(
    name: str, folder: Path, cfg: DataConfig, readable_names: dict[str, str]
) -> SourceSplits:
    """train/ is the training split; test/ (or else val/) is the test split."""
    train_dir = folder / "train"
    test_dir = folder / "test" if (folder / "test").is_dir() else folder / "val"
    if not train_dir.is_dir() or not test_dir.is_dir():
        raise UserError(
            f"{name}: expected {folder}/train/<class>/ and {folder}/val/<class>/ image folders; "
            f"point data.root at the folder holding train/ and val/ (--set data.root=...)"
        )
    classes = class_folders(train_dir)
    train_index, test_index = FileIndex(), FileIndex()
    train = index_split(train_dir, classes, train_index)
    if cfg.label_file:
        train = apply_label_file(train, folder, cfg, classes)
    if cfg.test_label_file:
        # The CSV may list training images too (Imagenette's does); the run asked for them.
        test = label_csv_samples(folder, cfg, classes)
    else:
        test = index_split(test_dir, classes, test_index)
        warn_shared_files(train_index, test_index, test_dir)
    info = DatasetInfo(
        name=name,
        classes=[readable_names.get(c, c) for c in classes],
        image_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    return SourceSplits(FileImageDataset(train), FileImageDataset(test), info, str(folder))


@DATASETS.register(
    "imagefolder", augment="random_resized_crop", padding_fraction=0.125, flip=True, embedded=False
)
def imagefolder(cfg: DataConfig) -> SourceSplits:
    """Any data.root holding train/<class>/ and val/<class>/ (or test/<class>/) images.

    Normalised with ImageNet's statistics; run `classicnets data stats imagefolder` for the
    folder's own.
    """
    return read_image_folder("imagefolder", resolve_root(cfg), cfg, {})


def _imagenette_folder(root: Path, image_size: int) -> Path | None:
    # the smallest release that still has enough pixels for the requested size
    order = IMAGENETTE_FOLDERS[::-1] if 0 < image_size <= 160 else IMAGENETTE_FOLDERS
    for candidate in (root, *(root / name for name in order)):
        if (candidate / "train").is_dir():
            return candidate
    return None


def _download_imagenette(root: Path, image_size: int) -> None:
    from torchvision.datasets import Imagenette

    size = "160px" if 0 < image_size <= 160 else "320px" if 0 < image_size <= 320 else "full"
    log.info("imagenette: downloading the %s release to %s with torchvision", size, root)
    try:
        Imagenette(str(root), split="train", size=size, download=True)
    except Exception as error:  # URLError, HTTPError, OSError, RuntimeError
        raise UserError(f"downloading imagenette to {root} failed: {error}") from None


@DATASETS.register(
    "imagenette", augment="random_resized_crop", padding_fraction=0.125, flip=True, embedded=False
)
def imagenette(cfg: DataConfig) -> SourceSplits:
    """Imagenette (imagenette2, -320 or -160): 9,469 train and 3,925 val images, 10 classes."""
    root = resolve_root(cfg)
    folder = _imagenette_folder(root, cfg.image_size)
    if folder is None and cfg.download:
        _download_imagenette(root, cfg.image_size)
        folder = _imagenette_folder(root, cfg.image_size)
    if folder is None:
        raise UserError(
            f"imagenette not found: looked for train/ in {root} and in "
            f"{', '.join(str(root / n) for n in IMAGENETTE_FOLDERS)}; point data.root at it "
            f"(--set data.root=...) or fetch it with --set data.download=true when online"
        )
    return read_image_folder("imagenette", folder, cfg, IMAGENETTE_CLASSES)
