"""A trained model loaded back from its checkpoint: predict image classes and score a split.

What `classicnets predict` and `classicnets evaluate` do, and what `Run.predict` and
`Run.evaluate` call: one way to rebuild a model from a run, so the two cannot drift apart.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from classicnets.config import RunConfig, TestViews, apply_overrides, config_from_dict
from classicnets.data import DatasetInfo, build_splits, eval_transform
from classicnets.data.datasets import UnreadableImageError, load_image
from classicnets.device import pick_device
from classicnets.errors import UserError
from classicnets.evaluate.split import evaluate_split, write_split_result
from classicnets.models.build import build_model_for, load_state_strict
from classicnets.precision import pick_precision
from classicnets.run_record import record_dict
from classicnets.train.checkpoint import find_checkpoint, load_checkpoint

# What predict() accepts as one image: a file, a PIL image, or an (H, W, 3) uint8 array.
ImageInput = str | Path | Image.Image | np.ndarray


@dataclass
class TrainedModel:
    """A model in eval mode on the CPU with the weights of one checkpoint."""

    model: nn.Module
    config: RunConfig
    info: DatasetInfo
    checkpoint_path: Path

    @property
    def run_dir(self) -> Path | None:
        """The run folder the checkpoint belongs to (None for a loose checkpoint file)."""
        path = self.checkpoint_path
        return path.parent.parent if path.parent.name == "checkpoints" else None


@dataclass(frozen=True)
class Prediction:
    """The top classes for one image, most probable first."""

    source: str
    top: list[tuple[str, float]]

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def probability(self) -> float:
        return self.top[0][1]

    def __str__(self) -> str:
        ranked = ", ".join(f"{name} {probability:.3f}" for name, probability in self.top)
        return f"{self.source}: {ranked}"


def load_trained(path: Path, overrides: Sequence[str] = ()) -> TrainedModel:
    """The model of a checkpoint file or of a run folder (its best weights, else last.pt)."""
    checkpoint_path = find_checkpoint(Path(path))
    checkpoint = load_checkpoint(checkpoint_path)
    config = config_from_dict(apply_overrides(dict(checkpoint["config"]), overrides))
    info = DatasetInfo(
        name=config.data.name,
        classes=[str(name) for name in checkpoint["classes"]],
        image_size=int(checkpoint["image_size"]),
        mean=_rgb(checkpoint["mean"]),
        std=_rgb(checkpoint["std"]),
    )
    # The checkpoint holds every weight: never fetch the pretrained start point again.
    model_config = dataclasses.replace(config.model, weights="")
    model = build_model_for(model_config, len(info.classes), info.image_size)
    load_state_strict(model, checkpoint["model"], str(checkpoint_path))
    model.eval()
    return TrainedModel(model, config, info, checkpoint_path)


def _rgb(values: Sequence[Any]) -> tuple[float, float, float]:
    red, green, blue = (float(v) for v in values)
    return red, green, blue


def _as_image(image: ImageInput) -> tuple[str, Image.Image]:
    if isinstance(image, Image.Image):
        return "image", image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise UserError(
                f"an image array must be uint8 (H, W) or (H, W, 3); got {image.dtype} {image.shape}"
            )
        return "array", Image.fromarray(image)
    try:
        return str(image), load_image(str(image))
    except UnreadableImageError as error:
        raise UserError(f"cannot read image {error}") from None


def predict(
    trained: TrainedModel, images: ImageInput | Sequence[ImageInput], k: int = 5
) -> list[Prediction]:
    """The top-k classes of each image, preprocessed as the run's evaluation was."""
    items: Sequence[ImageInput] = (
        [images] if isinstance(images, str | Path | Image.Image | np.ndarray) else images
    )
    transform = eval_transform(trained.config.data, trained.info)
    classes = trained.info.classes
    predictions = []
    for item in items:
        source, image = _as_image(item)
        with torch.no_grad():
            probabilities = trained.model(transform(image).unsqueeze(0)).softmax(dim=1)[0]
        top = probabilities.topk(min(k, len(classes)))
        ranked = [
            (classes[index], float(probability))
            for probability, index in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        ]
        predictions.append(Prediction(source, ranked))
    return predictions


def evaluate_trained(
    trained: TrainedModel,
    split: str = "test",
    tta: TestViews = "none",
    out_root: Path | None = None,
) -> dict[str, Any]:
    """Score the model on one split of its data set; writes eval/<split>[-<tta>]/ under
    out_root (default: the run folder, else beside the checkpoint) and returns the metrics."""
    config = trained.config
    precision = pick_precision(config.train, pick_device(config.train.device))
    splits = build_splits(config.data)
    if list(splits.info.classes) != trained.info.classes:
        classes = splits.info.classes
        raise UserError(
            f"{trained.checkpoint_path} was trained on {len(trained.info.classes)} classes, but "
            f"{config.data.name} has {len(classes)} ({', '.join(classes[:5])}…)"
        )
    root = out_root or trained.run_dir or trained.checkpoint_path.parent
    model = trained.model.to(precision.device)
    try:
        result = evaluate_split(
            model,
            splits,
            split,
            tta,
            config.data,
            batch_size=config.train.batch_size,
            seed=config.train.seed,
            precision=precision,
        )
        return record_dict(write_split_result(result, root, splits, split, tta))
    finally:
        trained.model.to("cpu").eval()
