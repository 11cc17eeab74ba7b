"""A test split read from a label CSV, on a generated Imagenette-like tree: the images the CSV
lists, labelled by the column named, as the published Imagenette run scored its models."""

import csv
from pathlib import Path

import pytest
from PIL import Image

from classicnets.config import DataConfig
from classicnets.data import build_splits
from classicnets.data.folders import IMAGENETTE_CLASSES
from classicnets.errors import UserError

WNIDS = sorted(IMAGENETTE_CLASSES)


def imagenette_tree(root: Path, per_class: int = 2) -> Path:
    """imagenette2-320/{train,val}/<wnid>/*.JPEG and a noisy_imagenette.csv listing all of
    them, with a noisy column that moves every train image to the next class."""
    folder = root / "imagenette2-320"
    rows = []
    for split in ("train", "val"):
        for index, wnid in enumerate(WNIDS):
            (folder / split / wnid).mkdir(parents=True)
            for k in range(per_class):
                relative = f"{split}/{wnid}/{wnid}_{k}.JPEG"
                Image.new("RGB", (40, 30), (index * 20, k * 50, 0)).save(folder / relative)
                noisy = WNIDS[(index + 1) % len(WNIDS)] if split == "train" else wnid
                rows.append([relative, wnid, noisy, str(split == "val")])
    with (folder / "noisy_imagenette.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "noisy_labels_0", "noisy_labels_5", "is_valid"])
        writer.writerows(rows)
    return folder


def config(root: Path, **changes: object) -> DataConfig:
    return DataConfig(name="imagenette", root=str(root), val_fraction=0.0, **changes)


def test_parachute_folder_has_its_name() -> None:
    assert IMAGENETTE_CLASSES["n03888257"] == "parachute"


def test_label_csv_test_split_is_every_row_with_the_column_labels(tmp_path: Path) -> None:
    imagenette_tree(tmp_path)
    splits = build_splits(config(tmp_path, test_label_file="noisy_imagenette.csv"))
    assert "parachute" in splits.info.classes
    assert len(splits.test) == 40  # 20 train rows + 20 val rows, as the CSV lists them
    for path, label in splits.test.samples:
        assert Path(path).parent.name == WNIDS[label]  # noisy_labels_0: the clean labels
    assert len(splits.train) == 20  # training is unchanged


def test_label_csv_valid_rows_and_another_column(tmp_path: Path) -> None:
    imagenette_tree(tmp_path)
    splits = build_splits(
        config(
            tmp_path,
            test_label_file="noisy_imagenette.csv",
            test_label_column="noisy_labels_5",
            test_label_rows="valid",
        )
    )
    assert len(splits.test) == 20
    assert all("/val/" in path for path, _ in splits.test.samples)
    everything = build_splits(
        config(tmp_path, test_label_file="noisy_imagenette.csv", test_label_column="noisy_labels_5")
    )
    moved = [Path(p).parent.name != WNIDS[y] for p, y in everything.test.samples]
    assert sum(moved) == 20  # the noisy column relabels exactly the train rows


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"test_label_column": "noisy_labels_9"}, "needs columns 'path', 'noisy_labels_9'"),
        ({"test_label_file": "missing.csv"}, "cannot read"),
    ],
)
def test_label_csv_errors_are_user_errors(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    imagenette_tree(tmp_path)
    settings = {"test_label_file": "noisy_imagenette.csv", **changes}
    with pytest.raises(UserError, match=message):
        build_splits(config(tmp_path, **settings))


def test_label_csv_row_naming_a_missing_image_is_a_user_error(tmp_path: Path) -> None:
    folder = imagenette_tree(tmp_path)
    (folder / "val" / WNIDS[0] / f"{WNIDS[0]}_0.JPEG").unlink()
    with pytest.raises(UserError, match="is not a file"):
        build_splits(config(tmp_path, test_label_file="noisy_imagenette.csv"))


def test_data_mean_and_std_replace_the_data_set_statistics(tmp_path: Path) -> None:
    imagenette_tree(tmp_path)
    splits = build_splits(config(tmp_path, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]))
    assert splits.info.mean == (0.5, 0.5, 0.5) and splits.info.std == (0.25, 0.25, 0.25)
    with pytest.raises(UserError, match=r"data\.mean takes 3 values"):
        build_splits(config(tmp_path, mean=[0.5]))
