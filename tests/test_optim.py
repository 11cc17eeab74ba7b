import pytest
import torch
from torch import nn

from classicnets.config import OptimConfig, ScheduleConfig
from classicnets.errors import UserError
from classicnets.train import optim as optim_module
from classicnets.train.optim import build_optimizer, build_scheduler, current_lr


def lrs(
    schedule_cfg: ScheduleConfig, epochs: int = 4, steps: int = 5, lr: float = 0.1
) -> list[float]:
    optimizer = build_optimizer(nn.Linear(2, 2), OptimConfig(name="sgd", lr=lr))
    schedule = build_scheduler(optimizer, schedule_cfg, epochs, steps)
    seen = []
    for _ in range(epochs * steps):
        seen.append(current_lr(optimizer))
        optimizer.step()
        assert schedule.per_step is not None
        schedule.per_step.step()
    return seen


def test_step_schedule_divides_by_ten_every_step_epochs() -> None:
    seen = lrs(ScheduleConfig(name="step", step_epochs=2, gamma=0.1))
    assert seen[0] == pytest.approx(0.1) and seen[9] == pytest.approx(0.1)
    assert seen[10] == pytest.approx(0.01) and seen[19] == pytest.approx(0.01)


def test_multistep_milestones_are_epochs() -> None:
    seen = lrs(ScheduleConfig(name="multistep", milestones=[1, 3], gamma=0.5))
    assert [seen[0], seen[5], seen[15]] == pytest.approx([0.1, 0.05, 0.025])


def test_cosine_with_warmup_rises_then_decays_to_min() -> None:
    seen = lrs(ScheduleConfig(name="cosine", warmup_epochs=1, min_lr=0.001))
    assert seen[0] < seen[4] == pytest.approx(0.1)
    assert seen[-1] < 0.01 and min(seen[5:]) >= 0.001


def test_warmup_starts_at_its_share_of_the_peak() -> None:
    # 2 warm-up steps of 5 x 4: airbench's rise from 0.2 of the peak, then linear decay to 0.
    seen = lrs(ScheduleConfig(name="linear", warmup_epochs=0.4, warmup_start=0.2))
    assert seen[:3] == pytest.approx([0.1 * (0.2 + 0.8 / 2), 0.1, 0.1])
    assert lrs(ScheduleConfig(name="linear", warmup_epochs=0.4))[0] == pytest.approx(0.05)


def test_onecycle_peaks_at_optim_lr() -> None:
    seen = lrs(ScheduleConfig(name="onecycle", pct_start=0.25))
    assert max(seen) == pytest.approx(0.1, rel=1e-3)
    assert seen[0] < 0.01 and seen[-1] < 0.001


def test_plateau_divides_when_val_top1_stops_improving() -> None:
    optimizer = build_optimizer(nn.Linear(2, 2), OptimConfig(name="sgd", lr=0.1))
    schedule = build_scheduler(optimizer, ScheduleConfig(name="plateau", patience=1), 5, 3)
    assert schedule.per_step is None and schedule.plateau is not None
    for top1 in (50.0, 60.0, 60.0, 60.0):
        schedule.plateau.step(top1)
    assert current_lr(optimizer) == pytest.approx(0.01)


def test_nesterov_and_adamw_are_built() -> None:
    model = nn.Linear(2, 2)
    sgd = build_optimizer(model, OptimConfig(name="sgd", nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    assert isinstance(build_optimizer(model, OptimConfig(name="adamw")), torch.optim.AdamW)
    with pytest.raises(UserError, match=r"optim\.lr must be positive"):
        build_optimizer(model, OptimConfig(lr=0.0))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_fused_cpu_update_follows_the_one_by_one_update(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    twin = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    twin.load_state_dict(model.state_dict())
    cfg = OptimConfig(name=name, lr=0.05, nesterov=True, weight_decay=1e-3)
    fused = build_optimizer(model, cfg)
    assert fused.defaults["fused"] is True
    monkeypatch.setattr(optim_module, "fused_update_available", lambda params: None)
    plain = build_optimizer(twin, cfg)  # PyTorch's CPU default: one tensor at a time
    assert not plain.defaults["fused"]
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    for _ in range(5):
        for net, optimizer in ((model, fused), (twin, plain)):
            nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for ours, reference in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(ours, reference)


def test_bias_and_norm_parameters_skip_decay_only_when_asked() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    everything = build_optimizer(model, OptimConfig(weight_decay=1e-3))
    assert [group["weight_decay"] for group in everything.param_groups] == [1e-3]
    split = build_optimizer(model, OptimConfig(weight_decay=1e-3, decay_bias_and_norm=False))
    decayed, exempt = split.param_groups
    assert decayed["weight_decay"] == 1e-3 and exempt["weight_decay"] == 0.0
    assert {p.ndim for p in decayed["params"]} == {2, 4}  # conv and linear weights
    assert len(exempt["params"]) == 4 and all(p.ndim == 1 for p in exempt["params"])
