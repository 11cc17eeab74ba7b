"""Model summary: multiply-accumulates from FlopCounterMode agree with published figures and
with hand arithmetic; the table carries honest units."""

import pytest
import torch
from torch import nn

from classicnets.models import build_model
from classicnets.models.summary import count_macs, format_summary, summarize


def build_on_meta(name: str, num_classes: int = 1000) -> nn.Module:
    """Operation counts depend only on shapes, so the meta device (no memory, no init) will do."""
    with torch.device("meta"):
        return build_model(name, num_classes=num_classes)


# torchvision's published "GFLOPS" per model at 224x224, which are multiply-accumulates.
PUBLISHED_GMACS = {"alexnet_owt": 0.714, "vgg16": 15.47, "resnet18": 1.81, "googlenet": 1.498}


@pytest.mark.parametrize(("name", "gmacs"), sorted(PUBLISHED_GMACS.items()))
def test_macs_match_torchvision_published_figures(name: str, gmacs: float) -> None:
    macs = count_macs(build_on_meta(name), (3, 224, 224))
    assert macs / 1e9 == pytest.approx(gmacs, rel=0.01)


def test_alexnet_rows_match_hand_arithmetic() -> None:
    summary = summarize(build_on_meta("alexnet"), (3, 227, 227))
    rows = {row.name: row for row in summary.rows}
    conv1 = rows["features.0"]
    assert conv1.kind == "Conv2d"
    assert conv1.output_shape == (96, 55, 55)
    assert conv1.params == 96 * 3 * 11 * 11 + 96
    assert conv1.macs == 96 * 55 * 55 * (3 * 11 * 11)
    # conv2 is grouped: each output map sees 48 of the 96 input maps.
    assert rows["features.4"].macs == 256 * 27 * 27 * (48 * 5 * 5)
    assert rows["features.14"].output_shape == (256, 6, 6)
    assert rows["classifier.6"].output_shape == (1000,)
    assert rows["classifier.6"].macs == 4096 * 1000
    assert sum(row.params for row in summary.rows) == summary.total_params == 60_965_224
    assert sum(row.macs for row in summary.rows) == summary.total_macs
    assert summary.trainable_params == summary.total_params
    assert summary.input_shape == (3, 227, 227)


def test_grouping_halves_conv2_macs() -> None:
    grouped = summarize(build_on_meta("alexnet"), (3, 227, 227))
    one_tower = summarize(build_on_meta("alexnet_onetower"), (3, 227, 227))
    grouped_conv2 = next(row for row in grouped.rows if row.name == "features.4")
    full_conv2 = next(row for row in one_tower.rows if row.name == "features.4")
    assert 2 * grouped_conv2.macs == full_conv2.macs


def test_summarize_restores_training_mode_and_counts_frozen_params() -> None:
    model = build_model("convnet4_cifar", num_classes=10)
    model.features[0].weight.requires_grad_(False)
    summary = summarize(model, (3, 32, 32))
    assert model.training
    assert summary.total_params - summary.trainable_params == 32 * 3 * 5 * 5
    assert count_macs(model, (3, 32, 32)) == summary.total_macs > 0


def test_macs_scale_with_input_area() -> None:
    model = build_on_meta("vgg11_bn_cifar", num_classes=10)
    small = summarize(model, (3, 32, 32))
    large = summarize(model, (3, 64, 64))
    conv_small = sum(row.macs for row in small.rows if row.kind == "Conv2d")
    conv_large = sum(row.macs for row in large.rows if row.kind == "Conv2d")
    assert conv_large == 4 * conv_small


def test_format_summary_labels_units() -> None:
    text = format_summary(summarize(build_model("alexnet_cifar", num_classes=10), (3, 32, 32)))
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "kind", "output", "shape", "params", "MACs"]
    assert any(line.startswith("features.0") and "96x32x32" in line for line in lines)
    assert "params: 36,925,322 (36,925,322 trainable)" in text
    macs = count_macs(build_model("alexnet_cifar", num_classes=10), (3, 32, 32))
    assert f"MACs (multiply-accumulates): {macs:,}" in text
    assert f"FLOPs = 2 x MACs: {2 * macs:,}" in text
