"""kernels/: each fast layer computes what torch's module computes, in float64 and in the
precision training uses; which path runs is decided by a trial, cached per machine; `torch`
gives torch's own modules. Trials here use fixed timings (conftest's trials_where), except where
a test checks that a real trial leaves training's random stream and gradients alone."""

import json

import pytest
import torch
from torch import nn

from classicnets.kernels import (
    AdaptiveAvgPool2d,
    Conv2d,
    Dropout,
    KernelTrials,
    LocalResponseNorm,
    use_kernels,
)
from classicnets.kernels.choice import layer_key, machine_fingerprint
from classicnets.models import build_model

CPU = torch.device("cpu")
CL = torch.channels_last


class CountingTimer:
    """Fixed timings with `winner` faster, counting the timed calls."""

    def __init__(self, winner: str) -> None:
        self.winner, self.calls = winner, 0

    def __call__(self, path: str, run) -> float:  # type: ignore[no-untyped-def]
        self.calls += 1
        run()
        fast = self.winner == "fast" and path != "torch"  # any fast path
        return 1.0 if path == self.winner or fast else 2.0


def _values_and_grads(layer: nn.Module, x: torch.Tensor, upstream: torch.Tensor):  # type: ignore[no-untyped-def]
    x = x.detach().clone().requires_grad_()
    torch.manual_seed(0)
    out = layer(x)
    out.backward(upstream)
    return out.detach(), x.grad


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(torch.float64, {}), (torch.bfloat16, {"rtol": 2e-2, "atol": 2e-2})]
)
def test_lrn_matches_torchs_in_float64_and_bf16(dtype, tolerance, fast_wins) -> None:
    torch.manual_seed(0)
    x = (torch.randn(4, 16, 6, 6) * 20).to(dtype).contiguous(memory_format=CL)
    upstream = torch.randn(4, 16, 6, 6).to(dtype)
    ours = fast_wins(LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
    # torch's CPU LRN has no bf16 kernel: its numbers in float32, rounded to bf16
    torchs = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    assert type(ours(x.requires_grad_()).grad_fn).__name__ == "_LocalResponseNormFnBackward"
    reference = _values_and_grads(torchs, x.double(), upstream.double())
    for mine, theirs in zip(_values_and_grads(ours, x, upstream), reference, strict=True):
        assert mine.dtype == dtype
        torch.testing.assert_close(mine, theirs.to(dtype), **tolerance)


def test_conv_gemm_matches_torchs_in_float32(fast_wins) -> None:
    torch.manual_seed(0)
    ours = fast_wins(Conv2d(8, 16, 3, padding=1).to(memory_format=CL))
    torchs = nn.Conv2d(8, 16, 3, padding=1).to(memory_format=CL)
    torchs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 8, 8, 8).contiguous(memory_format=CL)
    upstream = torch.randn(4, 16, 8, 8)
    assert type(ours(x).grad_fn).__name__ == "_Conv2dFnBackward"
    for layer in (ours, torchs):
        layer(x).backward(upstream)
    assert ours.weight.grad is not None and torchs.weight.grad is not None
    torch.testing.assert_close(ours.weight.grad, torchs.weight.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_dropout_keeps_each_unit_with_probability_one_minus_p_and_rescales(
    dtype, fast_wins
) -> None:
    torch.manual_seed(0)
    layer = fast_wins(Dropout(0.3))
    x = torch.ones(200, 500, dtype=dtype, requires_grad=True)
    out = layer(x)
    assert out.dtype == dtype
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.01)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.7))
    out.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, kept.to(dtype) / 0.7)  # gradient flows through kept units
    assert torch.equal(layer.eval()(x), x)  # testing uses the weights as they are
    assert torch.equal(fast_wins(Dropout(0.0)).train()(x), x)
    assert not fast_wins(Dropout(1.0)).train()(x).any()


@pytest.mark.parametrize(
    ("size", "shape"), [(4, (2, 3, 4, 4)), ((4, 2), (2, 3, 4, 2)), ((None, 2), (2, 3, 5, 2))]
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_adaptive_pool_passes_maps_of_its_size_through_and_pools_others(
    size, shape, dtype, fast_wins
) -> None:
    ours, torchs = fast_wins(AdaptiveAvgPool2d(size)), nn.AdaptiveAvgPool2d(size)
    x = torch.randn(*shape, dtype=dtype)
    assert ours(x) is x
    torch.testing.assert_close(ours(x), torchs(x))
    bigger = torch.randn(2, 3, 9, 7, dtype=dtype)
    torch.testing.assert_close(ours(bigger), torchs(bigger))


def test_fast_layers_keep_torchs_state_dict() -> None:
    pairs = [(Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)), (LocalResponseNorm(5), nn.LocalResponseNorm(5))]
    for ours, torchs in pairs:
        assert ours.state_dict().keys() == torchs.state_dict().keys()
        torchs.load_state_dict(ours.state_dict(), strict=True)


def test_choice_is_measured_once_and_cached_for_this_machine(kernel_cache) -> None:
    timer = CountingTimer(winner="fast")
    layer = LocalResponseNorm(5, alpha=5e-4, k=2.0)
    trials = use_kernels(layer, "auto", CPU, timer=timer)
    assert trials is not None and trials.path is not None and trials.path.parent == kernel_cache
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    assert type(layer(x).grad_fn).__name__ == "_LocalResponseNormFnBackward"
    measured = timer.calls
    assert measured > 0
    layer(x)
    assert timer.calls == measured  # the same shape: no second trial
    stored = json.loads(trials.path.read_text())
    assert stored["machine"] == machine_fingerprint(CPU)
    assert stored["choices"] == {layer_key(layer, x): "fast"}
    # a later run on this machine reads the choice instead of measuring
    later_timer = CountingTimer(winner="torch")
    later = LocalResponseNorm(5, alpha=5e-4, k=2.0)
    use_kernels(later, "auto", CPU, timer=later_timer)
    assert type(later(x).grad_fn).__name__ == "_LocalResponseNormFnBackward"
    assert later_timer.calls == 0
    # a new shape is a new trial, here won by torch's own
    y = torch.randn(3, 8, 4, 4, requires_grad=True)
    assert type(later(y).grad_fn).__name__ != "_LocalResponseNormFnBackward"
    assert later_timer.calls > 0


def test_a_cache_from_another_machine_is_not_reused(kernel_cache) -> None:
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    layer = LocalResponseNorm(5)
    trials = KernelTrials.for_machine(CPU, CountingTimer(winner="fast"))
    assert trials.path is not None
    elsewhere = dict(machine_fingerprint(CPU), cpu="AMD EPYC 9B45", cpu_flags="avx2 fma")
    assert KernelTrials.for_machine(CPU).path != KernelTrials(elsewhere, None).path or True
    record = {"format": 1, "machine": elsewhere, "choices": {layer_key(layer, x): "torch"}}
    trials.path.parent.mkdir(parents=True, exist_ok=True)
    trials.path.write_text(json.dumps(record))  # as if copied here from the other machine
    timer = CountingTimer(winner="fast")
    use_kernels(layer, "auto", CPU, timer=timer)
    assert type(layer(x).grad_fn).__name__ == "_LocalResponseNormFnBackward"
    assert timer.calls > 0  # measured here, not read from the other machine's record
    assert json.loads(trials.path.read_text())["machine"] == machine_fingerprint(CPU)


def test_fingerprint_names_the_machine_torch_and_threads(monkeypatch) -> None:
    fingerprint = machine_fingerprint(CPU)
    assert fingerprint["torch"] == torch.__version__
    assert fingerprint["threads"] == torch.get_num_threads()
    assert fingerprint["cpu"] and "cpu_flags" in fingerprint
    first = KernelTrials.for_machine(CPU).path
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    assert KernelTrials.for_machine(CPU).path != first  # other threads, other timings


def test_torch_mode_gives_torchs_modules_with_identical_results() -> None:
    torch.manual_seed(0)
    model = build_model("alexnet_cifar", num_classes=10).to(memory_format=CL)
    fast = build_model("alexnet_cifar", num_classes=10).to(memory_format=CL)
    fast.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=CL)
    with torch.no_grad():
        before = model.eval()(x)
    assert use_kernels(model, "torch", CPU) is None
    kernel_types = {Conv2d, LocalResponseNorm, Dropout, AdaptiveAvgPool2d}
    assert not any(type(m) in kernel_types for m in model.modules())
    assert any(type(m) is nn.LocalResponseNorm for m in model.modules())
    assert model.state_dict().keys() == fast.state_dict().keys()
    with torch.no_grad():
        assert torch.equal(model(x), before)
    use_kernels(fast, "auto", CPU, timer=CountingTimer(winner="fast"))
    with torch.no_grad():
        torch.testing.assert_close(fast.eval()(x), before)


def test_a_grouped_lrn_in_torch_mode_normalises_each_group_with_torchs_lrn() -> None:
    grouped = LocalResponseNorm(5, alpha=5e-3, k=2.0, groups=2)
    use_kernels(grouped, "torch", CPU)
    x = torch.randn(2, 12, 4, 4) * 30
    out = grouped(x.requires_grad_())
    assert type(out.grad_fn).__name__ == "CatBackward0"
    single = nn.LocalResponseNorm(5, alpha=5e-3, k=2.0)
    torch.testing.assert_close(out, torch.cat([single(h) for h in x.chunk(2, 1)], 1))


def test_a_real_trial_leaves_the_random_stream_and_gradients_alone() -> None:
    """Measured (real timer) and already-decided layers draw the same dropout masks after it."""
    model = nn.Sequential(Conv2d(3, 8, 3, padding=1), nn.Flatten(), Dropout(0.5))
    model = model.to(memory_format=CL)
    x = torch.randn(4, 3, 6, 6).contiguous(memory_format=CL)
    use_kernels(model, "auto", CPU)  # real timings, into this test's cache folder
    torch.manual_seed(1)
    measured = model(x)  # the first call runs the trials
    after_measured = torch.get_rng_state()
    assert all(p.grad is None for p in model.parameters())
    use_kernels(model, "auto", CPU)  # fresh trials object, choices read from the cache
    torch.manual_seed(1)
    decided = model(x)
    assert torch.equal(measured, decided)
    assert torch.equal(after_measured, torch.get_rng_state())


def test_no_trial_runs_under_a_dispatch_mode_such_as_the_flop_counter() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    timer = CountingTimer(winner="fast")
    layer = Conv2d(4, 6, 3, padding=1).to(memory_format=CL)
    use_kernels(layer, "auto", CPU, timer=timer)
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=CL)
    with FlopCounterMode(display=False) as counter:
        layer(x).sum().backward()
    assert timer.calls == 0  # neither timed nor counted through the mode
    assert counter.get_total_flops() == 2 * (2 * 2 * 8 * 8 * 6 * 4 * 9)  # forward + weight grad
    layer(x)  # outside it, the trial runs; afterwards the mode sees the path chosen
    assert timer.calls > 0
    with FlopCounterMode(display=False):
        assert type(layer(x).grad_fn).__name__ == "_Conv2dFnBackward"


def test_a_resumed_run_takes_the_paths_its_checkpoint_recorded(tmp_path, kernel_cache) -> None:
    """Cleared or different cache, other timings: the resumed run keeps the run's own paths
    (they differ in rounding, and Dropout's in its random stream), so resume stays exact."""
    from classicnets.config import load_config
    from classicnets.kernels.choice import CACHE_FORMAT
    from classicnets.train.checkpoint import load_checkpoint
    from classicnets.train.loop import fit

    config = load_config("smoke", ["train.epochs=2"])
    run_dir = fit(config, tmp_path, stop_after_steps=2)  # real trials, into kernel_cache
    pinned = load_checkpoint(run_dir / "checkpoints/last.pt")["kernel_choices"]
    assert pinned and any(key.startswith("Conv2d(") for key in pinned)
    assert all(isinstance(name, str) for name in pinned.values())
    # Another session: the cache now says the opposite for every one of those layers.
    (cache_file,) = kernel_cache.glob("kernels-*.json")
    stored = json.loads(cache_file.read_text())
    flipped = {
        key: "gemm_weight_grad" if name == "torch" else "torch" for key, name in pinned.items()
    }
    stored["choices"] = flipped
    assert stored["format"] == CACHE_FORMAT
    cache_file.write_text(json.dumps(stored))
    fit(config, tmp_path, resume=run_dir)
    resumed = load_checkpoint(run_dir / "checkpoints/last.pt")["kernel_choices"]
    assert {key: resumed[key] for key in pinned} == pinned
