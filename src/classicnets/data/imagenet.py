"""ILSVRC-2012 (Russakovsky et al. 2015, arXiv:1409.0575): the 1.28M-image train split and the
50,000-image val split, which serves as the test split (the test labels were never released).

Class index convention: class i is the i-th wnid in sorted order (n01440764 "tench" is 0).
This is the order of torchvision's ImageNet/ImageFolder and of every torchvision pretrained
weight, whose `meta["categories"]` gives the names.

Accepted layouts under data.root:
- train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (torchvision's ImageNet layout, meta.bin optional);
- val/*.JPEG in one folder plus a ground-truth file (data.label_file, else found in the root or
  in ILSVRC2012_devkit_t12/data/). Two formats:
  * one integer per line, in sorted file-name order: the devkit's ILSVRC2012_validation_ground
    _truth.txt, whose labels are ILSVRC2012_IDs (1..1000, the devkit's own order, not sorted
    wnids); they are mapped to wnids with the devkit's data/meta.mat, which must sit next to it;
  * "<file name> <label>" per line (Caffe's val.txt): labels are already 0-based sorted-wnid
    indices.
"""

from __future__ import annotations

import logging
from pathlib import Path

from classicnets.config import DataConfig
from classicnets.data.datasets import (
    DATASETS,
    DatasetInfo,
    FileImageDataset,
    SourceSplits,
    resolve_root,
)
from classicnets.data.folders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FileIndex,
    class_folders,
    index_split,
    loose_images,
    warn_shared_files,
)
from classicnets.errors import UserError

log = logging.getLogger(__name__)

GROUND_TRUTH_NAME = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_DATA = Path("ILSVRC2012_devkit_t12") / "data"
IMAGENET_CLASSES = 1000


def imagenet_category_names() -> list[str]:
    """The 1000 class names in sorted-wnid order, from torchvision's weights metadata."""
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def read_devkit_wnids(meta_mat: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid for the 1000 leaf classes, from the devkit's meta.mat."""
    import scipy.io  # type: ignore[import-untyped]

    try:
        synsets = scipy.io.loadmat(str(meta_mat), squeeze_me=True)["synsets"]
        # fields: ILSVRC2012_ID, WNID, words, gloss, num_children, ...; leaves have no children
        return {
            int(row["ILSVRC2012_ID"]): str(row["WNID"])
            for row in synsets
            if int(row["num_children"]) == 0
        }
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise UserError(f"cannot read the devkit's class table {meta_mat}: {error}") from None


def find_ground_truth(root: Path, cfg: DataConfig) -> Path | None:
    if cfg.label_file:
        path = Path(cfg.label_file).expanduser()
        path = path if path.is_absolute() or path.exists() else root / path
        if not path.is_file():
            raise UserError(f"data.label_file: no file at {path}")
        return path
    for candidate in (root / GROUND_TRUTH_NAME, root / DEVKIT_DATA / GROUND_TRUTH_NAME):
        if candidate.is_file():
            return candidate
    return None


def read_ground_truth(path: Path, images: list[str], wnids: list[str] | None) -> list[int]:
    """Sorted-wnid labels for `images` (sorted file names) from a ground-truth file."""
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if len(lines) != len(images):
        raise UserError(f"{path} has {len(lines)} labels for {len(images)} val images")
    try:
        if all(len(parts) == 2 for parts in lines):  # Caffe's val.txt: name, 0-based index
            by_name = {Path(name).name: int(label) for name, label in lines}
            labels = [by_name[Path(image).name] for image in images]
        else:
            labels = _devkit_labels(path, [int(parts[0]) for parts in lines], wnids)
    except (ValueError, KeyError) as error:
        raise UserError(f"{path}: cannot match labels to val images ({error})") from None
    bad = [label for label in labels if not 0 <= label < IMAGENET_CLASSES]
    if bad:
        raise UserError(f"{path}: label {bad[0]} is outside 0..{IMAGENET_CLASSES - 1}")
    return labels


def _devkit_labels(path: Path, ids: list[int], wnids: list[str] | None) -> list[int]:
    meta_mat = path.parent / "meta.mat"
    if not meta_mat.is_file():
        raise UserError(
            f"{path} holds devkit ILSVRC2012_IDs; mapping them to classes needs the devkit's "
            f"meta.mat next to it (not found: {meta_mat})"
        )
    id_to_wnid = read_devkit_wnids(meta_mat)
    order = wnids if wnids is not None else sorted(id_to_wnid.values())
    index_of = {wnid: index for index, wnid in enumerate(order)}
    return [index_of[id_to_wnid[i]] for i in ids]


def _flat_val_message(val_dir: Path, count: int) -> str:
    return (
        f"imagenet: {val_dir} holds {count} images that are not split into class folders and "
        f"no ground-truth file was found; read as an image folder they would all be one class "
        f"(the known ~0.1% top-1 trap). Give --set data.label_file=<{GROUND_TRUTH_NAME} with "
        f"the devkit's meta.mat beside it, or Caffe's val.txt>, or sort val/ into wnid folders"
    )


def _imagenet_wnids(root: Path, train_dir: Path, val_dir: Path) -> list[str]:
    if train_dir.is_dir():
        return class_folders(train_dir)
    log.warning("imagenet: no %s; only evaluation is possible", train_dir)
    meta_mat = root / DEVKIT_DATA / "meta.mat"
    if meta_mat.is_file():
        return sorted(read_devkit_wnids(meta_mat).values())
    return class_folders(val_dir)


@DATASETS.register("imagenet", augment="alexnet", padding_fraction=0.125, flip=True, embedded=False)
def imagenet(cfg: DataConfig) -> SourceSplits:
    """ILSVRC-2012 train and val (as the test split); see the module docstring for layouts."""
    root = resolve_root(cfg)
    train_dir, val_dir = root / "train", root / "val"
    if not val_dir.is_dir():
        raise UserError(
            f"imagenet not found: no {val_dir} (and {train_dir}); point data.root at the folder "
            f"holding train/ and val/ (--set data.root=...); ImageNet cannot be downloaded"
        )
    wnids = _imagenet_wnids(root, train_dir, val_dir)
    train_index, test_index = FileIndex(), FileIndex()
    train = index_split(train_dir, wnids, train_index) if train_dir.is_dir() else []
    test = _index_val(root, val_dir, wnids, cfg, test_index)
    warn_shared_files(train_index, test_index, val_dir)
    names = imagenet_category_names() if len(wnids) == IMAGENET_CLASSES else wnids
    info = DatasetInfo("imagenet", names, 224, IMAGENET_MEAN, IMAGENET_STD)
    return SourceSplits(FileImageDataset(train), FileImageDataset(test), info, str(root))


def _index_val(
    root: Path, val_dir: Path, wnids: list[str], cfg: DataConfig, index: FileIndex
) -> list[tuple[str, int]]:
    loose = loose_images(val_dir)
    folders = class_folders(val_dir)
    if loose and not folders:
        ground_truth = find_ground_truth(root, cfg)
        if ground_truth is None:
            raise UserError(_flat_val_message(val_dir, len(loose)))
        labels = read_ground_truth(ground_truth, loose, wnids)
        log.info("imagenet: val labels from %s", ground_truth)
        return list(zip(loose, labels, strict=True))
    if len(folders) == 1 and len(wnids) > 1:
        count = len(list((val_dir / folders[0]).iterdir()))
        raise UserError(_flat_val_message(val_dir / folders[0], count))
    return index_split(val_dir, wnids, index)
