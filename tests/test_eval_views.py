"""How evaluate() combines test-time views: equal softmax averages, or weighted logits."""

import pytest
import torch
from torch import nn

from classicnets.data.transforms import VIEW_WEIGHTS, translate_flip_views
from classicnets.evaluate.loop import evaluate
from classicnets.precision import Precision

CPU = torch.device("cpu")
FP32 = Precision(CPU, None, False, False)


class Fixed(nn.Module):
    """Logits are the first pixels of each view: each view's logits are set by the test."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3]


def views_with_logits(logits: torch.Tensor) -> torch.Tensor:
    """(N, V, 3) logits -> (N, V, 1, 1, 3) images that Fixed turns back into them."""
    return logits[:, :, None, None, :].clone()


def test_weights_cover_the_six_views_with_the_unshifted_pair_at_one_half() -> None:
    weights = VIEW_WEIGHTS["translate_flip_weighted"]
    assert len(weights) == translate_flip_views(torch.zeros(1, 3, 4, 4)).shape[1] == 6
    assert sum(weights[:2]) == 0.5 and sum(weights) == 1.0


def test_weighted_views_mix_logits_where_plain_views_average_probabilities() -> None:
    logits = torch.tensor(
        [
            # the unshifted pair favours class 1, the four shifted views class 0: four equal
            # votes of six pick 0; the pair's weight of 1/2 and its larger margin pick 1
            [[0.0, 2.0, 0.0]] * 2 + [[1.0, 0.0, 0.0]] * 4,
            [[2.0, 0.0, 1.0]] * 6,
        ]
    )
    targets = torch.tensor([1, 0])
    x = views_with_logits(logits)
    weights = (0.25, 0.25, 0.125, 0.125, 0.125, 0.125)

    plain = evaluate(Fixed(), [(x, targets)], FP32, 3, collect=True)
    mixed = evaluate(Fixed(), [(x, targets)], FP32, 3, collect=True, view_weights=weights)

    probs = logits.softmax(dim=2).mean(dim=1)
    mix = (logits * torch.tensor(weights)[None, :, None]).sum(dim=1)
    assert plain.top1 == 50.0 and mixed.top1 == 100.0
    assert plain.top5_probs is not None and mixed.top5_probs is not None
    torch.testing.assert_close(plain.top5_probs[:, 0], probs.max(dim=1).values)
    torch.testing.assert_close(mixed.top5_probs[:, 0], mix.softmax(dim=1).max(dim=1).values)
    expected_loss = -mix.log_softmax(dim=1)[torch.arange(2), targets].mean()
    assert abs(mixed.loss - expected_loss.item()) < 1e-5


def test_weighted_views_score_in_fp32_under_bf16_autocast() -> None:
    logits = torch.randn(4, 6, 3)
    bf16 = Precision(CPU, torch.bfloat16, False, False)
    weights = VIEW_WEIGHTS["translate_flip_weighted"]
    result = evaluate(
        Fixed(),
        [(views_with_logits(logits), torch.arange(4) % 3)],
        bf16,
        3,
        collect=True,
        view_weights=weights,
    )
    assert result.top5_probs is not None and result.top5_probs.dtype == torch.float32


def test_weights_must_match_the_view_count() -> None:
    x = views_with_logits(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="1 view weights for 2 views"):
        evaluate(Fixed(), [(x, torch.tensor([0]))], FP32, 3, view_weights=(1.0,))
