"""Local response normalisation (AlexNet §3.3) with a hand-written backward pass.

`nn.LocalResponseNorm` computes the sum over neighbouring maps with `avg_pool3d` on a padded 5-D
view; on CPU its backward pass took about 4 s of an 11 s alexnet_cifar training step
(benchmarks/RESULTS.md). The same sums as a few shifted adds, and the gradient written out,
give the same numbers (tested against PyTorch's and against the paper's equation) in a small
fraction of the time.

With s_c = k + alpha/n * sum_{c' in window(c)} a_c'^2 and b_c = a_c * s_c^-beta, the gradient is
    dL/da_i = g_i * s_i^-beta - (2 alpha beta / n) * a_i * sum_{c: i in window(c)} g_c b_c / s_c,
where the second sum runs over the window reversed (the same window when n is odd).
"""

from typing import Any

import torch
from torch import nn


def channel_window_sum(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """sum_{c' = c - before}^{c + after} t[:, c'] for every map c, with zeros past either end."""
    total = t.clone()
    channels = t.shape[1]
    for offset in range(1, min(before, channels - 1) + 1):
        total[:, offset:] += t[:, :-offset]
    for offset in range(1, min(after, channels - 1) + 1):
        total[:, :-offset] += t[:, offset:]
    return total


class _LocalResponseNormFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, size: int, alpha: float, beta: float, k: float
    ) -> torch.Tensor:
        # nn.LocalResponseNorm's window: size // 2 maps before c and (size - 1) // 2 after.
        before, after = size // 2, (size - 1) // 2
        scale = channel_window_sum(a * a, before, after).mul_(alpha / size).add_(k)
        factor = scale.pow(-beta)
        ctx.save_for_backward(a, scale, factor)
        ctx.constants = (size, alpha, beta, after, before)
        return a * factor

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (g,) = grads
        a, scale, factor = ctx.saved_tensors
        size, alpha, beta, before, after = ctx.constants  # the window reversed
        # In-place steps after the first product: each new 4-D tensor costs page faults on CPU.
        through_sum = channel_window_sum((g * a).mul_(factor).div_(scale), before, after)
        grad = (g * factor).addcmul_(through_sum, a, value=-2.0 * alpha * beta / size)
        return grad, None, None, None, None


class LocalResponseNorm(nn.LocalResponseNorm):
    """`nn.LocalResponseNorm` with the same arguments and outputs, and a faster gradient."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() != 4 or input.numel() == 0:
            return super().forward(input)
        out: torch.Tensor = _LocalResponseNormFn.apply(
            input, self.size, self.alpha, self.beta, self.k
        )
        return out
