"""The hand-written local response normalisation must match PyTorch's, values and gradients
(here with its fast path winning every trial; tests/test_kernels.py covers the choice)."""

import pytest
import torch
from torch import nn

from classicnets.kernels import lrn as lrn_module
from classicnets.kernels.lrn import (
    LocalResponseNorm,
    batch_slices,
    channel_window_sum,
    negative_power,
)


@pytest.fixture(autouse=True)
def sliced_path_wins(monkeypatch: pytest.MonkeyPatch, trials_where) -> None:
    monkeypatch.setattr(LocalResponseNorm, "kernel_trials", trials_where("fast"), raising=False)


@pytest.mark.parametrize(
    ("size", "channels", "memory_format", "beta"),
    [
        (5, 12, torch.contiguous_format, 0.75),
        (5, 12, torch.channels_last, 0.75),
        (4, 7, torch.contiguous_format, 0.75),  # an even window is lopsided: 2 before, 1 after
        (9, 3, torch.channels_last, 0.75),  # a window wider than the maps there are
        (1, 4, torch.contiguous_format, 0.75),
        (5, 12, torch.channels_last, 0.5),  # beta 0.5 and others take other roots than 0.75
        (5, 12, torch.contiguous_format, 0.6),
    ],
)
def test_values_and_gradients_match_pytorch(
    size: int, channels: int, memory_format: torch.memory_format, beta: float
) -> None:
    torch.manual_seed(0)
    # Large activations make alpha * sum(a^2) comparable to k, so every term matters.
    a = (torch.randn(3, channels, 5, 6) * 30).to(memory_format=memory_format)
    upstream = torch.randn(3, channels, 5, 6)
    ours = LocalResponseNorm(size, alpha=5e-3, beta=beta, k=2.0)
    reference = nn.LocalResponseNorm(size, alpha=5e-3, beta=beta, k=2.0)
    results = []
    for module in (ours, reference):
        x = a.clone().requires_grad_()
        out = module(x)
        out.backward(upstream)
        assert x.grad is not None
        results.append((out.detach(), x.grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)


def test_gradient_passes_gradcheck_in_double() -> None:
    torch.manual_seed(0)
    a = (torch.randn(2, 6, 3, 3, dtype=torch.float64) * 10).requires_grad_()
    module = LocalResponseNorm(4, alpha=1e-2, beta=0.75, k=2.0)
    assert torch.autograd.gradcheck(module, (a,))


@pytest.mark.parametrize("beta", [0.75, 0.5, 0.6])
def test_negative_power_matches_pow(beta: float) -> None:
    scale = torch.rand(1000, dtype=torch.float64) * 50 + 1
    torch.testing.assert_close(negative_power(scale, beta), scale.pow(-beta), rtol=1e-14, atol=0)


def test_channel_window_sum_counts_each_neighbour_once() -> None:
    t = torch.arange(5.0).reshape(1, 5, 1, 1)  # maps hold 0, 1, 2, 3, 4
    out = channel_window_sum(t, before=2, after=1).flatten().tolist()
    assert out == [0 + 1, 0 + 1 + 2, 0 + 1 + 2 + 3, 1 + 2 + 3 + 4, 2 + 3 + 4]
    assert torch.equal(t, torch.arange(5.0).reshape(1, 5, 1, 1))  # the input is not changed


def test_other_shapes_fall_back_to_pytorch() -> None:
    x = torch.randn(2, 6, 10)  # 1-D maps: not the 4-D case the fast path handles
    module = LocalResponseNorm(3)
    torch.testing.assert_close(module(x), nn.LocalResponseNorm(3)(x))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_groups_normalise_each_group_of_maps_on_its_own(
    memory_format: torch.memory_format,
) -> None:
    torch.manual_seed(0)
    a = (torch.randn(2, 12, 4, 4) * 30).to(memory_format=memory_format)
    upstream = torch.randn(2, 12, 4, 4)
    grouped = LocalResponseNorm(5, alpha=5e-3, beta=0.75, k=2.0, groups=2)
    single = nn.LocalResponseNorm(5, alpha=5e-3, beta=0.75, k=2.0)
    x = a.clone().requires_grad_()
    grouped(x).backward(upstream)
    halves = [a[:, :6].clone().requires_grad_(), a[:, 6:].clone().requires_grad_()]
    expected = torch.cat([single(h) for h in halves], dim=1)
    expected.backward(upstream)
    torch.testing.assert_close(grouped(a), expected.detach())
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.cat([h.grad for h in halves], dim=1))  # type: ignore[misc]
    # the maps next to the boundary differ from a normalisation across it
    assert not torch.allclose(grouped(a)[:, 5], single(a)[:, 5])


def test_maps_that_do_not_split_into_the_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="do not split into 2 groups"):
        LocalResponseNorm(5, groups=2)(torch.randn(1, 5, 2, 2))


@pytest.mark.parametrize("slice_elements", [1, 400, 800])  # slices of 1, 1 and 2 images
@pytest.mark.parametrize("groups", [1, 2])
def test_working_through_the_batch_in_slices_changes_nothing(
    slice_elements: int, groups: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    a = (torch.randn(3, 12, 5, 6) * 30).to(memory_format=torch.channels_last)  # 360 per image
    upstream = torch.randn(3, 12, 5, 6)
    module = LocalResponseNorm(5, alpha=5e-3, beta=0.75, k=2.0, groups=groups)
    results = []
    for elements in (slice_elements, 2**19):
        monkeypatch.setattr(lrn_module, "SLICE_ELEMENTS", elements)
        x = a.clone().requires_grad_()
        out = module(x)
        out.backward(upstream)
        results.append((out.detach(), x.grad))
    assert len(batch_slices(a)) == 1  # the last setting: the whole batch at once
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=0)


def test_batch_slices_cover_the_batch_once(monkeypatch: pytest.MonkeyPatch) -> None:
    t = torch.zeros(10, 4, 8, 8)  # 256 elements per image
    assert batch_slices(t) == [(0, 10)]
    monkeypatch.setattr(lrn_module, "SLICE_ELEMENTS", 1024)
    assert batch_slices(t) == [(0, 4), (4, 4), (8, 2)]
    assert batch_slices(t.to("meta")) == [(0, 10)]  # off the CPU: one slice
