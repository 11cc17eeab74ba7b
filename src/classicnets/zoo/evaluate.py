"""Score torchvision's pretrained weights on ILSVRC-2012 val and set the result beside the
accuracy torchvision publishes for them, flagging any gap over 0.1 points.

The images go through the transform in the weights' own metadata (resize 256, centre crop
224, ImageNet mean/std). `normalize` replaces the mean/std to show a common pitfall: a
mean = std = 0.5 normalisation drops AlexNet from 56.5% to about 39.5% top-1.

A val folder may hold any subset of the 1,000 classes: with a wnid list (zoo/wnids.py) each
folder keeps its 1,000-way index, and the table says "N images of K classes: not comparable
to the published number". Several weight files can be scored in one call (`WeightsJob`).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torchvision.transforms.v2 as v2

from classicnets.atomic import atomic_write_text
from classicnets.config import DataConfig, load_config
from classicnets.data import DatasetInfo, build_splits, loader_from_transform
from classicnets.data.datasets import FileImageDataset, ImageDataset, resolve_root
from classicnets.data.folders import class_folders
from classicnets.data.transforms import ViewStack
from classicnets.device import pick_device
from classicnets.errors import UserError
from classicnets.evaluate.loop import evaluate
from classicnets.precision import pick_precision
from classicnets.report.compare import free_stem
from classicnets.zoo.weights import (
    DEFAULT_WEIGHTS,
    ZooEntry,
    check_weights_available,
    load_zoo_model,
    published_accuracy,
    resolve_models,
    weights_enum,
)
from classicnets.zoo.wnids import find_wnid_list, full_index, read_wnid_list

log = logging.getLogger(__name__)

ImageNetViews = Literal["none", "10crop"]
MeanStd = tuple[tuple[float, float, float], tuple[float, float, float]]
IMAGENET_CLASSES = 1000
IMAGENET_VAL_IMAGES = 50_000
GAP_POINTS = 0.1  # a larger gap to the published accuracy is flagged
WNID = re.compile(r"n\d{8}")


@dataclass(frozen=True)
class ZooRow:
    """One line of the zoo table; accuracies in percent."""

    model: str  # torchvision's name
    registry_model: str
    weights: str
    tta: str
    normalize: str  # "weights" or the overriding "mean=..., std=..."
    images: int
    classes: int  # distinct classes among the images scored
    top1: float
    top5: float
    published_top1: float
    published_top5: float

    @property
    def gap_top1(self) -> float:
        return self.top1 - self.published_top1

    @property
    def gap_top5(self) -> float:
        return self.top5 - self.published_top5

    @property
    def flagged(self) -> bool:
        return abs(self.gap_top1) > GAP_POINTS or abs(self.gap_top5) > GAP_POINTS

    @property
    def comparable(self) -> bool:
        """Scored on the whole of ILSVRC-2012 val, as the published number is."""
        return self.images == IMAGENET_VAL_IMAGES and self.classes == IMAGENET_CLASSES

    def scope(self) -> str:
        text = f"{self.images:,} images of {self.classes:,} classes"
        return text if self.comparable else f"{text}: not comparable to the published number"

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "gap_top1": self.gap_top1,
            "gap_top5": self.gap_top5,
            "flagged": self.flagged,
            "comparable": self.comparable,
            "scope": self.scope(),
        }


def weights_transform(
    entry: ZooEntry, tta: ImageNetViews = "none", normalize: MeanStd | None = None
) -> Callable[[Any], torch.Tensor]:
    """The weights' own eval transform, or the same steps with ten crops or another mean/std."""
    preset = weights_enum(entry).transforms()
    if tta == "none" and normalize is None:
        return cast(Callable[[Any], torch.Tensor], preset)
    mean, std = normalize if normalize is not None else (preset.mean, preset.std)
    crop, resize = int(preset.crop_size[0]), int(preset.resize_size[0])
    to_tensor = v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
            v2.ToPureTensor(),
        ]
    )
    scale = v2.Resize(resize, interpolation=preset.interpolation, antialias=preset.antialias)
    if tta == "none":
        steps = [scale, v2.CenterCrop(crop), to_tensor]
    else:
        # AlexNet §4.1: the four corner and the centre 224 patches of the central 256x256
        # square (§2), and their horizontal reflections; the softmax is averaged over the ten.
        steps = [scale, v2.CenterCrop(resize), ViewStack("10crop", crop, to_tensor)]
    return cast(Callable[[Any], torch.Tensor], v2.Compose(steps))


def _check_wnid_folders(root: Path) -> None:
    for split in ("train", "val"):
        folder = root / split
        names = class_folders(folder) if folder.is_dir() else []
        odd = [name for name in names if not WNID.fullmatch(name)]
        if odd:
            raise UserError(
                f"{folder}/{odd[0]} is not a WordNet id like n01440764; the weights index "
                f"classes by sorted wnids, so folders named otherwise would be misnumbered"
            )


def imagenet_test_set(
    cfg: DataConfig, info: DatasetInfo, test: ImageDataset, wnids: Path | None
) -> ImageDataset:
    """The val images labelled with the weights' 1,000-way indices.

    All 1,000 classes present: the labels are those indices already. Fewer: each class
    folder's wnid is looked up in the wnid list (--wnids, or one in data.root), else refused.
    """
    root = resolve_root(cfg)
    _check_wnid_folders(root)
    if len(info.classes) == IMAGENET_CLASSES:
        return test
    source = find_wnid_list(root, wnids)
    if source is None or not isinstance(test, FileImageDataset):
        raise UserError(
            f"imagenet at {root} has {len(info.classes)} classes; ImageNet-1k weights index "
            f"all {IMAGENET_CLASSES}, so a subset needs the wnid list that numbers them: give "
            f"--wnids synset_words.txt (or LOC_synset_mapping.txt, or the devkit's meta.mat)"
        )
    index = full_index(list(info.classes), read_wnid_list(source), source)
    log.info("imagenet: %d of the 1,000 classes, indexed by %s", len(index), source)
    return FileImageDataset([(path, index[label]) for path, label in test.samples])


def parse_normalize(text: str) -> MeanStd:
    """'0.5,0.5' (one mean and std for all channels) or six numbers 'r,g,b,r,g,b'."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 2:
        values = [values[0]] * 3 + [values[1]] * 3
    if len(values) != 6 or any(v <= 0 for v in values[3:]):
        raise UserError(f"--normalize expects MEAN,STD or six numbers R,G,B,R,G,B; got {text!r}")
    return (values[0], values[1], values[2]), (values[3], values[4], values[5])


def weights_jobs(names: Sequence[str], weights: Sequence[str]) -> list[tuple[ZooEntry, str]]:
    """(model, weights) pairs to score: DEFAULT weights for each named model; with plain
    PATHs, each file for the one model named; with MODEL=PATH, that file for that model (the
    named models without one keep DEFAULT)."""
    pairs = [item.partition("=") for item in weights]
    keyed = [(model, path) for model, sep, path in pairs if sep]
    plain = [model for model, sep, _ in pairs if not sep]
    if keyed and plain:
        raise UserError("--weights: give either PATHs (for one model) or MODEL=PATH, not both")
    if plain:
        entries = resolve_models(names)
        if len(entries) != 1:
            raise UserError(
                "--weights PATH holds one model's weights: name exactly one model "
                "(or give --weights MODEL=PATH for each)"
            )
        return [(entries[0], path) for path in plain]
    jobs = [(resolve_models([model])[0], path) for model, path in keyed]
    given = {entry.name for entry, _ in jobs}
    named = resolve_models(names) if names or not jobs else []
    return [(entry, DEFAULT_WEIGHTS) for entry in named if entry.name not in given] + jobs


def evaluate_zoo(
    names: Sequence[str],
    out_dir: Path,
    weights: Sequence[str] = (),
    overrides: Sequence[str] = (),
    tta: ImageNetViews = "none",
    normalize: MeanStd | None = None,
    wnids: Path | None = None,
) -> Path:
    """Score each (model, weights) pair on the ImageNet val split; write zoo.md and zoo.json."""
    jobs = weights_jobs(names, weights)
    for entry, source in jobs:
        check_weights_available([entry], source)
    config = load_config(
        None, ["data.name=imagenet", "data.val_fraction=0", "train.amp=off", *overrides]
    )
    if config.data.name != "imagenet":
        raise UserError("zoo evaluate scores ImageNet-1k weights: --data imagenet only")
    precision = pick_precision(config.train, pick_device(config.train.device))
    splits = build_splits(config.data)
    test = imagenet_test_set(config.data, splits.info, splits.test, wnids)
    classes = len(set(test.targets.tolist()))
    if normalize is not None:
        log.warning(
            "--normalize mean=%s std=%s replaces the weights' own normalisation: expect a lower "
            "score. This shows the pitfall; it is not a valid evaluation of the weights",
            normalize[0],
            normalize[1],
        )
    rows = []
    for entry, source in jobs:
        model = load_zoo_model(entry, source).to(precision.device)
        loader = loader_from_transform(
            test,
            weights_transform(entry, tta, normalize),
            config.train.batch_size,
            precision.device,
            num_workers=config.data.num_workers,
        )
        result = evaluate(model, loader.epoch(0), precision, IMAGENET_CLASSES)
        rows.append(_zoo_row(entry, source, tta, normalize, result.count, classes, result))
        del model
    return write_zoo_table(rows, out_dir, str(resolve_root(config.data)))


def _zoo_row(
    entry: ZooEntry,
    source: str,
    tta: str,
    normalize: MeanStd | None,
    images: int,
    classes: int,
    result: Any,
) -> ZooRow:
    published = published_accuracy(entry)
    row = ZooRow(
        model=entry.name,
        registry_model=entry.model,
        weights=source,
        tta=tta,
        normalize="weights" if normalize is None else f"mean={normalize[0]}, std={normalize[1]}",
        images=images,
        classes=classes,
        top1=result.top1,
        top5=result.top5,
        published_top1=published[0],
        published_top5=published[1],
    )
    log.info(
        "%s (%s): top-1 %.3f%% (published %.3f), top-5 %.3f%% (published %.3f) on %s%s",
        entry.name,
        source,
        row.top1,
        row.published_top1,
        row.top5,
        row.published_top5,
        row.scope(),
        "  GAP > 0.1" if row.flagged else "",
    )
    return row


def _flag(row: ZooRow) -> str:
    flag = "gap > 0.1" if row.flagged else "ok"
    return flag if row.comparable else f"{flag}; not comparable"


def write_zoo_table(rows: Sequence[ZooRow], out_dir: Path, data_root: str) -> Path:
    """zoo.md and zoo.json (zoo-2.* etc. if they exist); returns the Markdown path."""
    stem = free_stem(out_dir, "zoo")
    notes = []
    for scope in sorted({row.scope() for row in rows if not row.comparable}):
        notes.append(
            f"{scope} (the published numbers are over all {IMAGENET_VAL_IMAGES:,} images of "
            f"the {IMAGENET_CLASSES:,} ILSVRC-2012 val classes); the gaps only show direction."
        )
    if any(row.normalize != "weights" for row in rows):
        notes.append(
            "--normalize replaced the weights' mean/std: the scores show that pitfall and are "
            "not valid evaluations."
        )
    lines = [
        "# Pretrained weights on ImageNet val",
        "",
        f"Data: {data_root}. Measured {datetime.date.today().isoformat()} "
        f"({os.cpu_count()} CPU cores visible, torch {torch.__version__}). Published numbers: "
        f"torchvision's model table. A gap over {GAP_POINTS} points is flagged.",
        "",
        *(f"> {note}" for note in notes),
        "",
        "| model | registry model | weights | tta | normalize | images | classes | top-1 | "
        "published top-1 | gap | top-5 | published top-5 | gap | flag |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.model} | {row.registry_model} | {row.weights} | {row.tta} | "
            f"{row.normalize} | {row.images:,} | {row.classes:,} | {row.top1:.3f} | "
            f"{row.published_top1:.3f} | "
            f"{row.gap_top1:+.3f} | {row.top5:.3f} | {row.published_top5:.3f} | "
            f"{row.gap_top5:+.3f} | {_flag(row)} |"
        )
    markdown = out_dir / f"{stem}.md"
    atomic_write_text(markdown, "\n".join(lines) + "\n")
    payload = {"data_root": data_root, "notes": notes, "rows": [row.to_dict() for row in rows]}
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(payload, indent=1) + "\n")
    return markdown
