"""The presets that rerun the published student runs (docs/reproductions.md): each one's
resolved values against a table of what its write-up states, its net's parameter count, and
a one-epoch smoke run on synthetic images through the same recipe."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from classicnets.cli import main
from classicnets.config import DataConfig, RunConfig, knob_values, load_config
from classicnets.data import DatasetInfo, TensorImageDataset, build_loader
from classicnets.data.transforms import resolve_recipe
from classicnets.models import model_info
from classicnets.train.loop import fit

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class WriteUp:
    """What one write-up states about its run (or, where marked in the preset, assumes)."""

    model: str
    params: int
    optimizer: str
    lr: float
    momentum: float | None  # None: not an SGD run
    weight_decay: float
    schedule: str
    batch_size: int
    epochs: int
    augment: str
    crop_size: int
    padding: int
    flip_probability: float
    eval_resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    val_fraction: float
    init: str
    tested: str  # which model the final test scores: "last" epoch or "best" by val
    test_label_file: str = ""
    early_stop: tuple[int, str] = (0, "val_top1")  # patience (0 = none) and what it watches


# fmt: off
IMAGENETTE_000 = WriteUp(
    "alexnet_onetower_nolrn", 58_322_314, "sgd", 1e-3, 0.9, 5e-4, "constant", 128, 20,
    "random_resized_crop", 227, 0, 0.5, 256, IMAGENET_MEAN, IMAGENET_STD, 0.0, "default",
    "last", "noisy_imagenette.csv",
)
WRITE_UPS = {
    "alexnet_imagenette": IMAGENETTE_000,
    "alexnet_bn_imagenette": WriteUp(
        **{**IMAGENETTE_000.__dict__, "model": "alexnet_onetower_bn", "params": 58_325_066}
    ),
    "alexnet_cifar10": WriteUp(
        "alexnet_cifar_nolrn", 36_925_322, "adam", 1e-3, None, 0.0, "constant", 128, 10,
        "crop_flip", 32, 4, 0.5, 32, CIFAR_MEAN, CIFAR_STD, 0.0, "default", "last",
    ),
    "alexnet_lrn_cifar10_128": WriteUp(
        "alexnet_onetower_128", 24_767_882, "adam", 1e-3, None, 1e-4, "constant", 64, 20,
        "flip", 128, 0, 0.5, 128, CIFAR_MEAN, (0.2022, 0.1993, 0.2009), 0.0, "default", "last",
    ),
    "vgg13_cifar10_128": WriteUp(
        "vgg13_128", 59_785_802, "adam", 1e-3, None, 1e-4, "constant", 64, 30, "flip", 128, 0,
        0.7, 128, (0.49139965, 0.48215845, 0.4465309), (0.060528398, 0.061124973, 0.06764512),
        0.2, "default", "last", early_stop=(5, "val_loss"),
    ),
    "vgg16_cifar10": WriteUp(
        "vgg16_cifar_fc", 33_638_218, "sgd", 0.01, 0.9, 5e-4, "step", 128, 50, "crop_flip", 32,
        4, 0.5, 32, CIFAR_MEAN, CIFAR_STD, 0.0, "xavier", "last",
    ),
    "vgg16_bn_cifar10": WriteUp(
        "vgg16_bn_cifar_fc", 33_646_666, "sgd", 0.01, 0.9, 5e-4, "step", 128, 50, "crop_flip",
        32, 4, 0.5, 32, CIFAR_MEAN, CIFAR_STD, 0.0, "xavier", "last",
    ),
}
# fmt: on


def _info(config: RunConfig) -> DatasetInfo:
    side = config.data.image_size or model_info(config.model.name).input_size[-1]
    return DatasetInfo("x", [str(i) for i in range(10)], side, CIFAR_MEAN, CIFAR_STD)


@pytest.mark.parametrize("preset", sorted(WRITE_UPS))
def test_preset_resolves_to_the_write_up_values(preset: str) -> None:
    expected, config = WRITE_UPS[preset], load_config(preset)
    assert config.model.name == expected.model
    resolved_knobs = {**dict(model_info(expected.model).defaults), **knob_values(config.model)}
    assert resolved_knobs["init"] == expected.init
    optim = config.optim
    assert (optim.name, optim.lr, optim.weight_decay) == (
        expected.optimizer,
        expected.lr,
        expected.weight_decay,
    )
    if expected.momentum is not None:
        assert optim.momentum == expected.momentum and not optim.nesterov
    assert config.schedule.name == expected.schedule
    if expected.schedule == "step":  # lr / 10 every 20 epochs
        assert (config.schedule.step_epochs, config.schedule.gamma) == (20, 0.1)
    assert (config.train.batch_size, config.train.epochs) == (expected.batch_size, expected.epochs)
    recipe = resolve_recipe(config.data, _info(config))
    assert recipe.augment == expected.augment
    assert (recipe.crop_size, recipe.padding, recipe.resize) == (
        expected.crop_size,
        expected.padding,
        expected.eval_resize,
    )
    assert recipe.flip and recipe.flip_probability == expected.flip_probability
    assert not recipe.lighting
    assert tuple(config.data.mean) == expected.mean and tuple(config.data.std) == expected.std
    assert config.data.val_fraction == expected.val_fraction
    assert config.train.test_checkpoint == expected.tested
    assert (config.train.early_stop_patience, config.train.early_stop_metric) == expected.early_stop
    assert config.data.test_label_file == expected.test_label_file
    if expected.test_label_file:
        assert (config.data.test_label_column, config.data.test_label_rows) == (
            "noisy_labels_0",
            "all",
        )


@pytest.mark.parametrize("preset", sorted(WRITE_UPS))
def test_summary_preset_prints_the_write_up_param_count(
    preset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", "--preset", preset]) == 0
    out = capsys.readouterr().out
    assert f"model {WRITE_UPS[preset].model}" in out
    assert f"params: {WRITE_UPS[preset].params:,} " in out


def test_summary_preset_shows_knobs_and_has_no_lrn_where_the_run_has_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["summary", "--preset", "alexnet_cifar10"]) == 0
    out = capsys.readouterr().out
    assert "LocalResponseNorm" not in out and "norm=none" in out
    assert main(["summary", "--preset", "alexnet_lrn_cifar10_128", "--set", "model.norm=bn"]) == 0
    out = capsys.readouterr().out
    assert "knobs the preset sets: norm=bn" in out and "BatchNorm2d" in out


def test_summary_preset_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary"]) == 2
    assert main(["summary", "alexnet", "--preset", "vgg16_cifar10"]) == 2
    assert main(["summary", "--preset", "no_such_preset"]) == 2
    assert "unknown preset" in capsys.readouterr().err


@pytest.mark.slow  # each run writes two checkpoints of 25-60M parameters: 5-20 s apiece
@pytest.mark.parametrize("preset", sorted(WRITE_UPS))
def test_preset_trains_one_epoch_on_synthetic_images(preset: str, tmp_path: Path) -> None:
    config = load_config(preset)
    side = config.data.image_size or model_info(config.model.name).input_size[-1]
    overrides = [
        "data.name=synthetic",
        f"data.synthetic_size={side}",
        "data.synthetic_count=50",  # stratified: 0.2 of 5 per class holds one of each out
        "data.limit=4",
        "data.num_classes=10",
        "train.epochs=1",
        "train.batch_size=2",
        "train.amp=off",
        "train.progress=false",
    ]
    run_dir = fit(load_config(preset, overrides), tmp_path)
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert math.isfinite(record["train_loss"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["params"] == WRITE_UPS[preset].params


@pytest.mark.parametrize("in_memory", ["yes", "no"])
def test_flip_recipe_mirrors_the_share_data_flip_probability_says(in_memory: str) -> None:
    images = torch.zeros(600, 3, 32, 32, dtype=torch.uint8)
    images[..., 16:] = 255  # right half white: a mirrored image is white on the left
    dataset = TensorImageDataset(images, torch.zeros(600), [f"train/{i}" for i in range(600)])
    info = DatasetInfo("synthetic", ["a"], 32, (0.0,) * 3, (1.0,) * 3)
    config = DataConfig(name="synthetic", augment="flip", flip_probability=0.7, in_memory=in_memory)
    source = build_loader(
        dataset, config, info, train=True, batch_size=200, seed=0, device=torch.device("cpu")
    )
    batches = torch.cat([x for x, _ in source.epoch(0)])
    assert batches.shape == (600, 3, 32, 32)  # no crop: the whole image
    mirrored = (batches[:, 0, 0, 0] > 0.5).float().mean().item()
    assert abs(mirrored - 0.7) < 0.06


def test_monitor_test_records_the_test_split_every_epoch_and_selects_nothing(
    tmp_path: Path,
) -> None:
    base = ["train.epochs=3", "train.progress=false", "train.log_every_steps=1"]
    watched = fit(load_config("smoke", [*base, "train.monitor_test=true"]), tmp_path / "on")
    plain = fit(load_config("smoke", base), tmp_path / "off")
    rows = [json.loads(line) for line in (watched / "metrics.jsonl").read_text().splitlines()]
    plain_rows = [json.loads(line) for line in (plain / "metrics.jsonl").read_text().splitlines()]
    assert all(row["monitor_test_top1"] is not None for row in rows)
    assert all("monitor_test_top1" not in row for row in plain_rows)  # only when asked for
    # Monitoring changes nothing else: the same training, the same best-by-val epoch and test.
    for row, other in zip(rows, plain_rows, strict=True):
        assert (row["train_loss"], row["val_top1"]) == (other["train_loss"], other["val_top1"])
    summaries = [json.loads((run / "summary.json").read_text()) for run in (watched, plain)]
    assert summaries[0]["best_epoch"] == summaries[1]["best_epoch"]
    assert summaries[0]["test_top1"] == summaries[1]["test_top1"]
    best = summaries[0]["best_epoch"]
    assert rows[best - 1]["monitor_test_top1"] == pytest.approx(summaries[0]["test_top1"])
