"""train/lookahead.py: the slow weights' update against a hand computation, and a run with
optim.lookahead_every that resumes bit for bit and ends on the slow weights."""

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from classicnets.config import load_config
from classicnets.train.checkpoint import load_resume_checkpoint
from classicnets.train.lookahead import Lookahead
from classicnets.train.loop import fit


def test_sync_pulls_weights_to_the_slow_copy_with_the_ramped_decay() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    lookahead = Lookahead(model, every=2, base_decay=0.9, total_steps=8)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.add_(2.0)
    lookahead.after_step(model, 1)  # not a sync step: nothing moves
    assert torch.equal(model[0].weight, start["0.weight"] + 1.0)
    lookahead.after_step(model, 2)
    decay = 0.9**2 * (2 / 8) ** 3
    assert lookahead.decay(2) == pytest.approx(decay)
    expected = start["0.weight"] + (1 - decay) * 1.0
    assert torch.allclose(model[0].weight, expected)
    assert torch.allclose(lookahead.slow["0.weight"], expected)
    assert torch.allclose(model[1].running_mean, start["1.running_mean"] + (1 - decay) * 2.0)
    assert "1.num_batches_tracked" not in lookahead.slow  # integer buffers are left alone
    # The last step, off the sync grid, ends on the slow copy.
    lookahead.total_steps = 7
    with torch.no_grad():
        model[0].weight.add_(5.0)
    lookahead.after_step(model, 7)
    assert torch.equal(model[0].weight, lookahead.slow["0.weight"])
    assert torch.allclose(model[0].weight, expected)


def last_checkpoint(run_dir: Path) -> dict[str, Any]:
    checkpoint, _ = load_resume_checkpoint(run_dir)
    return checkpoint


def test_a_lookahead_run_resumes_exactly_and_ends_on_the_slow_weights(tmp_path: Path) -> None:
    overrides = ["optim.lookahead_every=3", "train.epochs=2", "data.val_fraction=0"]
    config = load_config("smoke", overrides)
    whole = last_checkpoint(fit(config, tmp_path / "whole"))
    stopped = fit(config, tmp_path / "split", stop_after_steps=4)  # between two syncs
    assert last_checkpoint(stopped)["train_state"]["global_step"] == 4
    resumed = last_checkpoint(fit(config, resume=stopped))
    assert whole["model"].keys() == resumed["model"].keys()
    for name, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    slow = whole["lookahead"]["slow"]
    assert slow and all(torch.equal(whole["model"][name], value) for name, value in slow.items())
    # Without Lookahead the same run ends elsewhere.
    plain = last_checkpoint(fit(load_config("smoke", overrides[1:]), tmp_path / "plain"))
    assert "lookahead" not in plain
    assert any(not torch.equal(plain["model"][k], v) for k, v in whole["model"].items())
