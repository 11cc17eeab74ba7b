"""train.monitor_test leaves the RNG that training draws from (dropout) where a run without it
leaves it: a DataLoader (data.in_memory=no) takes its base seed from that RNG each pass."""

from pathlib import Path

import torch

from classicnets.config import load_config
from classicnets.train.loop import fit


def test_monitoring_a_streamed_test_split_leaves_the_training_rng_alone(tmp_path: Path) -> None:
    states = []
    for name, monitor in (("plain", "false"), ("monitored", "true")):
        config = load_config(
            "smoke", ["train.epochs=2", "data.in_memory=no", f"train.monitor_test={monitor}"]
        )
        run_dir = fit(config, tmp_path / name)
        states.append(torch.load(run_dir / "checkpoints/last.pt", weights_only=False)["rng"])
    assert torch.equal(states[0]["torch"], states[1]["torch"])
