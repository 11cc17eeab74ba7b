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
    for tag in ("loss/train", "loss/val", "top1/train", "top1/val", "speed/images_per_second"):
        assert tag in scalars, tag
    assert [event.step for event in events.Scalars("loss/train")] == [1, 2]
    # per log step: smoke has 3 steps per epoch, logged at each epoch's last step at least
    steps = [event.step for event in events.Scalars("lr/step")]
    assert steps == sorted(steps) and steps[-1] == 6 and len(steps) >= 2
    assert len(events.Scalars("loss/train_step")) == len(steps)
    images = events.Tags()["images"]
    assert "test/confusion_matrix" in images and "model/conv1_filters" in images
    assert events.Images("model/conv1_filters")[0].width > 0
    hparams = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams
    start = hparams["_hparams_/session_start_info"].decode(errors="replace")
    assert "optim.lr" in start and "model.name" in start
