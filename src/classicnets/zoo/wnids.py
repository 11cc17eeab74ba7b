"""The 1,000-way class index of ImageNet-1k weights, from a wnid list, so that a val folder with
any subset of the classes is scored against the weights' own output indices.

The weights number the 1,000 ILSVRC-2012 classes by sorted wnid. The list comes from
synset_words.txt (Caffe's; also Kaggle's LOC_synset_mapping.txt: "n01440764 tench, ..." per
line, in sorted order) or from the devkit's data/meta.mat.
"""

from __future__ import annotations

from pathlib import Path

from classicnets.data.imagenet import DEVKIT_DATA, read_devkit_wnids
from classicnets.errors import UserError

IMAGENET_CLASSES = 1000
# Looked for in data.root when no --wnids file is given.
WNID_LIST_NAMES = ("synset_words.txt", "LOC_synset_mapping.txt", str(DEVKIT_DATA / "meta.mat"))


def read_wnid_list(path: Path) -> list[str]:
    """The 1,000 wnids in the weights' index order (sorted), from a synset list or meta.mat."""
    if path.suffix == ".mat":
        wnids = list(read_devkit_wnids(path).values())
    else:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"--wnids: cannot read {path}: {error}") from None
        wnids = [line.split()[0] for line in lines if line.strip()]
    if len(wnids) != IMAGENET_CLASSES or len(set(wnids)) != IMAGENET_CLASSES:
        raise UserError(
            f"--wnids: {path} lists {len(set(wnids))} distinct wnids; ImageNet-1k has "
            f"{IMAGENET_CLASSES}"
        )
    return sorted(wnids)


def find_wnid_list(root: Path, given: Path | None) -> Path | None:
    """--wnids if given, else a wnid list in data.root, else None."""
    if given is not None:
        if not given.is_file():
            raise UserError(f"--wnids: no file at {given}")
        return given
    return next((root / name for name in WNID_LIST_NAMES if (root / name).is_file()), None)


def full_index(present: list[str], wnids: list[str], source: Path) -> list[int]:
    """For each present class folder (a wnid), its index among the 1,000."""
    position = {wnid: index for index, wnid in enumerate(wnids)}
    unknown = [name for name in present if name not in position]
    if unknown:
        raise UserError(f"class folder {unknown[0]} is not one of the 1,000 wnids in {source}")
    return [position[name] for name in present]
