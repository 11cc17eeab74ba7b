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


def channel_window_sum(t: torch.Tensor, before: int, after: int, dim: int = 1) -> torch.Tensor:
    """sum_{c' = c - before}^{c + after} t[c'] along `dim` for every map c, zeros past the ends."""
    total = t.clone()
    maps = t.shape[dim]
    for offset in range(1, min(before, maps - 1) + 1):
        total.narrow(dim, offset, maps - offset).add_(t.narrow(dim, 0, maps - offset))
    for offset in range(1, min(after, maps - 1) + 1):
        total.narrow(dim, 0, maps - offset).add_(t.narrow(dim, offset, maps - offset))
    return total


def _by_group(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, C, H, W) as (B, groups, C / groups, H, W): a view in either memory layout."""
    if groups == 1:
        return t
    batch, maps, height, width = t.shape
    return t.view(batch, groups, maps // groups, height, width)


def _merge_groups(t: torch.Tensor, groups: int) -> torch.Tensor:
    return t.flatten(1, 2) if groups > 1 else t


class _LocalResponseNormFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, size: int, alpha: float, beta: float, k: float, groups: int
    ) -> torch.Tensor:
        # nn.LocalResponseNorm's window: size // 2 maps before c and (size - 1) // 2 after.
        before, after = size // 2, (size - 1) // 2
        a = _by_group(a, groups)
        dim = a.dim() - 3  # the maps' axis: 1, or 2 with groups
        scale = channel_window_sum(a * a, before, after, dim).mul_(alpha / size).add_(k)
        factor = scale.pow(-beta)
        ctx.save_for_backward(a, scale, factor)
        ctx.constants = (size, alpha, beta, after, before, groups)
        return _merge_groups(a * factor, groups)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, scale, factor = ctx.saved_tensors
        size, alpha, beta, before, after, groups = ctx.constants  # the window reversed
        g = _by_group(grads[0], groups)
        # In-place steps after the first product: each new 4-D tensor costs page faults on CPU.
        through = channel_window_sum((g * a).mul_(factor).div_(scale), before, after, a.dim() - 3)
        grad = (g * factor).addcmul_(through, a, value=-2.0 * alpha * beta / size)
        return _merge_groups(grad, groups), None, None, None, None, None


class LocalResponseNorm(nn.LocalResponseNorm):
    """`nn.LocalResponseNorm` with the same arguments and outputs, and a faster gradient.

    `groups` > 1 normalises each group of maps on its own: AlexNet's two GPUs each summed over
    their own maps only (§3.2, §3.3), which a grouped single-device model must copy.
    """

    def __init__(
        self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, groups: int = 1
    ) -> None:
        super().__init__(size, alpha, beta, k)
        self.groups = groups

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() == 4 and input.shape[1] % self.groups:
            raise ValueError(f"{input.shape[1]} maps do not split into {self.groups} groups")
        if input.dim() != 4 or input.numel() == 0:
            if self.groups != 1:
                raise ValueError("grouped local response normalisation needs (N, C, H, W) input")
            return super().forward(input)
        out: torch.Tensor = _LocalResponseNormFn.apply(
            input, self.size, self.alpha, self.beta, self.k, self.groups
        )
        return out

    def extra_repr(self) -> str:
        groups = f", groups={self.groups}" if self.groups > 1 else ""
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}{groups}"
