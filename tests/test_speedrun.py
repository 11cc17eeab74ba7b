"""speedrun_cifar: its shape, size and FLOPs, the whitening stem, the fast-learning BatchNorm
shift, the identity init, and that it can fit a small synthetic set."""

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from classicnets.kernels import Conv2d
from classicnets.models import build_model
from classicnets.models.speedrun import (
    SHIFT_LR_GAIN,
    WHITENING_EPS,
    ShiftNorm,
    cifar10_patch_covariance,
    whitening_filters,
)
from classicnets.models.summary import count_macs


def test_logits_shape_and_sizes() -> None:
    model = build_model("speedrun_cifar", num_classes=10)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    # whitening stem 24 x 3 x 2 x 2 + 24, convs 24->64->64, 64->256->256, 256->256->256,
    # 4 x 2 BatchNorm shifts, 256 -> 10 head without bias
    assert sum(p.numel() for p in model.parameters()) == 1_971_640
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1_971_352
    assert build_model("speedrun_cifar", num_classes=100)(torch.randn(2, 3, 32, 32)).shape[1] == 100


def test_flops_per_training_image() -> None:
    """The numbers behind configs/speedrun.yaml's 0.354 PFLOP for 10 epochs."""
    model = build_model("speedrun_cifar", num_classes=10)
    assert count_macs(model, (3, 32, 32)) == 118_147_360
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y).backward()
    per_image = counter.get_total_flops() / 2
    assert per_image == 707_777_088
    assert 10 * 50_000 * per_image / 1e15 < 0.40


def test_whitening_filters_whiten_the_patch_covariance() -> None:
    covariance = cifar10_patch_covariance()
    assert covariance.shape == (12, 12)
    torch.testing.assert_close(covariance, covariance.T)
    eigenvalues = torch.linalg.eigvalsh(covariance)
    assert eigenvalues.min() > 0
    filters = whitening_filters(covariance).double()
    assert filters.shape == (24, 3, 2, 2)
    flat = filters[:12].reshape(12, 12)
    # Output covariance of the first 12 filters: W C W^T = diag(l / (l + eps)).
    expected = torch.diag(eigenvalues / (eigenvalues + WHITENING_EPS))
    torch.testing.assert_close(flat @ covariance @ flat.T, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(filters[12:], -filters[:12])


def test_stem_is_frozen_whitening_and_convs_start_as_identity() -> None:
    model = build_model("speedrun_cifar", num_classes=10)
    stem = model.features[0]
    assert isinstance(stem, nn.Conv2d) and not stem.weight.requires_grad
    torch.testing.assert_close(stem.weight, whitening_filters(cifar10_patch_covariance()))
    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    assert len(convs) == 6
    for conv in convs:
        identity = torch.zeros_like(conv.weight[: conv.in_channels])
        nn.init.dirac_(identity)
        torch.testing.assert_close(conv.weight[: conv.in_channels], identity)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6 and all(m.weight is None for m in norms)


def test_shift_learns_gain_times_faster_under_sgd() -> None:
    norm = ShiftNorm(3)
    x = torch.randn(4, 3, 5, 5)
    weights = torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1)
    loss = (norm(x) * weights).sum()
    loss.backward()
    assert norm.shift.grad is not None
    # d loss / d (effective shift) per channel: the weight times the 4 x 5 x 5 positions
    grad_of_effective_shift = weights.flatten() * 100
    lr = 0.01
    before = norm.shift.detach().clone() * SHIFT_LR_GAIN**0.5
    torch.optim.SGD([norm.shift], lr=lr).step()
    after = norm.shift.detach() * SHIFT_LR_GAIN**0.5
    torch.testing.assert_close(after - before, -SHIFT_LR_GAIN * lr * grad_of_effective_shift)


def test_fits_a_small_synthetic_set() -> None:
    torch.manual_seed(0)
    model = build_model("speedrun_cifar", num_classes=4)
    x = torch.randn(32, 3, 16, 16)  # min input is 9: a quarter of the 32x32 FLOPs
    y = torch.arange(32) % 4
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.2, momentum=0.85, nesterov=True)
    for _ in range(60):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy == 1.0


@pytest.mark.slow
def test_patch_covariance_matches_cifar10_train_split() -> None:
    """Recompute the constant from CIFAR-10 (CLASSICNETS_DATA or ./data)."""
    from classicnets.config import DataConfig
    from classicnets.data.cifar import CIFAR10_MEAN, CIFAR10_STD, cifar10

    root = os.environ.get("CLASSICNETS_DATA", "./data")
    if not Path(root).is_dir():
        pytest.skip("no CIFAR-10 under CLASSICNETS_DATA")
    images = cifar10(DataConfig(name="cifar10", root=root)).train.images.float() / 255
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    patches = ((images - mean) / std).unfold(2, 2, 1).unfold(3, 2, 1)  # (N, 3, 31, 31, 2, 2)
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    flat = flat - flat.mean(0)
    measured = flat.T @ flat / len(flat)
    torch.testing.assert_close(measured, cifar10_patch_covariance(), atol=1e-5, rtol=0)


def test_stem_bias_trains_for_its_epochs_then_stays_fixed(tmp_path: Path) -> None:
    """model.stem_bias_epochs=1 through the training loop: the bias moves in epoch 1 and not
    after, under weight decay, while the rest of the net keeps training."""
    from classicnets.config import load_config
    from classicnets.train.checkpoint import load_resume_checkpoint
    from classicnets.train.loop import fit

    sets = ["model.name=speedrun_cifar", "model.init=null", "train.epochs=3", "data.val_fraction=0"]
    sets += ["data.synthetic_size=16", "optim.weight_decay=0.01"]

    def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
        return load_resume_checkpoint(run_dir)[0]["model"]

    start = build_model("speedrun_cifar", num_classes=4).state_dict()
    config = load_config("smoke", [*sets, "model.stem_bias_epochs=1"])
    after_one = last_weights(fit(config, tmp_path / "one", stop_after_steps=4))  # 4 per epoch
    final = last_weights(fit(config, tmp_path / "three"))
    bias, conv = "features.0.bias", "features.2.0.weight"
    assert not torch.equal(after_one[bias], start[bias])
    assert torch.equal(final[bias], after_one[bias]) and not torch.equal(
        final[conv], after_one[conv]
    )
    free = last_weights(fit(load_config("smoke", sets), tmp_path / "free"))
    assert not torch.equal(free[bias], after_one[bias])


def test_stem_bias_epochs_is_refused_under_data_parallelism() -> None:
    from classicnets.config import load_config
    from classicnets.errors import UserError
    from classicnets.train.distributed import DistContext
    from classicnets.train.setup import build_run_parts

    sets = ["model.name=speedrun_cifar", "model.init=null", "model.stem_bias_epochs=3"]
    with pytest.raises(UserError, match="DistributedDataParallel cannot follow"):
        build_run_parts(load_config("smoke", sets), None, DistContext(rank=0, world_size=2))
