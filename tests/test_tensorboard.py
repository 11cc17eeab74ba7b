from pathlib import Path

import pytest

from classicnets.cli import main

pytest.importorskip("tensorboard")


def test_tensorboard_logs_scalars_confusion_matrix_and_conv1_filters(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = [
        "train",
        "--preset",
        "smoke",
        "--out",
        str(tmp_path),
        "--set",
        "train.epochs=2",
        "--set",
        "train.tensorboard=true",
    ]
    assert main(args) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("train_loss", "val_top1", "lr", "images_per_second"):
        assert tag in scalars, tag
    assert [event.step for event in events.Scalars("train_loss")] == [1, 2]
    images = events.Tags()["images"]
    assert "test/confusion_matrix" in images and "model/conv1_filters" in images
    assert events.Images("model/conv1_filters")[0].width > 0
