"""What a finished run keeps: best weights as safetensors and last.pt; previous.pt and best.pt
only while it trains, or with train.keep_optimizer_state."""

from pathlib import Path

import torch

from classicnets.config import load_config
from classicnets.train.best_weights import load_best_weights
from classicnets.train.checkpoint import find_checkpoint, load_checkpoint
from classicnets.train.loop import fit
from classicnets.trained import load_trained


def _files(run_dir: Path) -> list[str]:
    return sorted(path.name for path in (run_dir / "checkpoints").iterdir())


def test_a_complete_run_keeps_safetensors_best_weights_and_last_pt(tmp_path: Path) -> None:
    run_dir = fit(load_config("smoke", ["train.epochs=2"]), tmp_path / "lean")
    assert _files(run_dir) == ["best.safetensors", "last.pt"]
    best = load_best_weights(run_dir / "checkpoints/best.safetensors")
    assert best["classes"] == ["class_0", "class_1", "class_2", "class_3"]
    assert best["config"]["train"]["epochs"] == 2 and best["epoch"] in (1, 2)
    assert find_checkpoint(run_dir).name == "best.safetensors"
    # the same weights the final test scored: evaluate from the folder gives its number
    trained = load_trained(run_dir)
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, best["model"][key]), key
    last = load_checkpoint(run_dir / "checkpoints/last.pt")
    assert "optimizer" in last and last["train_state"]["epochs_done"] == 2


def test_keep_optimizer_state_keeps_every_checkpoint(tmp_path: Path) -> None:
    config = load_config("smoke", ["train.epochs=2", "train.keep_optimizer_state=true"])
    run_dir = fit(config, tmp_path)
    assert _files(run_dir) == ["best.pt", "last.pt", "previous.pt"]


def test_an_interrupted_run_keeps_previous_pt_for_its_resume(tmp_path: Path) -> None:
    config = load_config("smoke", ["train.epochs=2", "train.checkpoint_every_steps=1"])
    run_dir = fit(config, tmp_path, stop_after_steps=4)
    assert _files(run_dir) == ["best.pt", "last.pt", "previous.pt"]
    fit(config, resume=run_dir)
    assert _files(run_dir) == ["best.safetensors", "last.pt"]
