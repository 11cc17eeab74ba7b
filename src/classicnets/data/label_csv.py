"""A test split read from a label CSV (Imagenette's noisy_imagenette.csv layout): the images the
CSV lists, each labelled by one of its columns, so a run can be scored as a published run that
graded against that file was (docs/reproductions.md, the Imagenette run)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from classicnets.config import DataConfig
from classicnets.errors import UserError

VALID_COLUMN = "is_valid"  # Imagenette's CSV: True for the val/ images


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def read_label_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as file:
            return list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"data.test_label_file: cannot read {path}: {error}") from None


def label_csv_samples(
    dataset_root: Path, cfg: DataConfig, classes: Sequence[str]
) -> list[tuple[str, int]]:
    """(path, label) for each row of data.test_label_file (all rows, or with
    data.test_label_rows=valid those whose is_valid column is true), labelled by the class
    folder name in column data.test_label_column. Paths are relative to the data set folder."""
    path = Path(cfg.test_label_file).expanduser()
    if not path.is_absolute() and not path.exists():
        path = dataset_root / path
    rows = read_label_csv(path)
    columns = list(rows[0]) if rows else []
    needed = ["path", cfg.test_label_column]
    if cfg.test_label_rows == "valid":
        needed.append(VALID_COLUMN)
    missing = [name for name in needed if name not in columns]
    if missing:
        raise UserError(
            f"data.test_label_file {path} needs columns {', '.join(repr(n) for n in needed)}; "
            f"found {', '.join(columns) or 'no rows'}"
        )
    if cfg.test_label_rows == "valid":
        rows = [row for row in rows if _truthy(row[VALID_COLUMN])]
    label_of = {name: index for index, name in enumerate(classes)}
    samples = []
    for row in rows:
        name = row[cfg.test_label_column]
        if name not in label_of:
            raise UserError(f"{path}: label {name!r} of {row['path']} is not a class folder name")
        image = os.path.normpath(dataset_root / row["path"])
        if not os.path.isfile(image):
            raise UserError(f"{path}: {row['path']} is not a file under {dataset_root}")
        samples.append((image, label_of[name]))
    if not samples:
        raise UserError(f"data.test_label_file {path} lists no images")
    return samples
