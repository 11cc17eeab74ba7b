"""Local response normalisation (AlexNet §3.3) with a hand-written backward pass.

`nn.LocalResponseNorm` computes the sum over neighbouring maps with `avg_pool3d` on a padded 5-D
view; on CPU its backward pass took about 4 s of an 11 s alexnet_cifar training step
(benchmarks/RESULTS.md). The same sums as a few shifted adds, and the gradient written out,
give the same numbers (tested against PyTorch's and against the paper's equation) in a small
fraction of the time. On the CPU both passes walk through the batch a slice at a time, so the
ten or so elementwise steps of a slice run in the cache instead of memory.

With s_c = k + alpha/n * sum_{c' in window(c)} a_c'^2 and b_c = a_c * s_c^-beta, the gradient is
    dL/da_i = g_i * s_i^-beta - (2 alpha beta / n) * a_i * sum_{c: i in window(c)} g_c b_c / s_c,
where the second sum runs over the window reversed (the same window when n is odd).
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from classicnets.kernels.choice import chosen_forward

# Elements per batch slice on the CPU: 2 MB of float32, which stays in the cache (L2 0.5 to 2 MB
# per core, L3 shared) through all the steps on it. Forward + backward at (128, 96, 32, 32), 2
# threads: 42 ms in slices vs 60 ms over the whole tensor (benchmarks/RESULTS.md).
SLICE_ELEMENTS = 2**19


def batch_slices(t: torch.Tensor) -> list[tuple[int, int]]:
    """(start, length) along dim 0 of the slices to work through: one on GPUs, which want
    large kernels, and slices of about SLICE_ELEMENTS on the CPU."""
    batch = t.shape[0]
    if t.device.type != "cpu" or batch == 0:
        return [(0, batch)]
    step = max(1, SLICE_ELEMENTS // max(1, t[0].numel()))
    return [(start, min(step, batch - start)) for start in range(0, batch, step)]


def channel_window_sum(t: torch.Tensor, before: int, after: int, dim: int = 1) -> torch.Tensor:
    """sum_{c' = c - before}^{c + after} t[c'] along `dim` for every map c, zeros past the ends."""
    # empty_like + copy_, not clone: a channels_last clone took 9x as long on CPU (torch 2.14).
    total = torch.empty_like(t).copy_(t)
    return add_neighbours(total, t, before, after, dim)


def add_neighbours(
    total: torch.Tensor, t: torch.Tensor, before: int, after: int, dim: int, weight: float = 1.0
) -> torch.Tensor:
    """total[c] += weight * t[c'] for the other maps c' of c's window, in place."""
    maps = t.shape[dim]
    for offset in range(1, min(before, maps - 1) + 1):
        total.narrow(dim, offset, maps - offset).add_(t.narrow(dim, 0, maps - offset), alpha=weight)
    for offset in range(1, min(after, maps - 1) + 1):
        total.narrow(dim, 0, maps - offset).add_(t.narrow(dim, offset, maps - offset), alpha=weight)
    return total


def negative_power(
    scale: torch.Tensor, beta: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """scale ** -beta, into `out` if given. For AlexNet's beta = 0.75 (§3.3) as
    rsqrt(s) * sqrt(rsqrt(s)): three cheap passes instead of pow's exp and log, 2.4x faster on
    the CPU (benchmarks/RESULTS.md)."""
    out = torch.empty_like(scale) if out is None else out
    if beta == 0.75:
        torch.rsqrt(scale, out=out)
        return out.mul_(out.sqrt())
    if beta == 0.5:
        return torch.rsqrt(scale, out=out)
    return torch.pow(scale, -beta, out=out)


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
        weight, k_tensor = alpha / size, a.new_full((), k)
        out, scale, factor = (torch.empty_like(a) for _ in range(3))
        for start, length in batch_slices(a):
            a_s, scale_s, factor_s = (t.narrow(0, start, length) for t in (a, scale, factor))
            # k + alpha/n * a_c^2 in one pass, then the neighbours' squares added into it.
            torch.addcmul(k_tensor, a_s, a_s, value=weight, out=scale_s)
            add_neighbours(scale_s, a_s * a_s, before, after, dim, weight)
            negative_power(scale_s, beta, out=factor_s)
            torch.mul(a_s, factor_s, out=out.narrow(0, start, length))
        ctx.save_for_backward(a, scale, factor)
        ctx.constants = (size, alpha, beta, after, before, groups)
        return _merge_groups(out, groups)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, scale, factor = ctx.saved_tensors
        size, alpha, beta, before, after, groups = ctx.constants  # the window reversed
        g = _by_group(grads[0], groups)
        grad = torch.empty_like(a)
        for start, length in batch_slices(a):
            g_s, a_s, scale_s, factor_s, grad_s = (
                t.narrow(0, start, length) for t in (g, a, scale, factor, grad)
            )
            through = (g_s * a_s).mul_(factor_s).div_(scale_s)  # g_c b_c / s_c
            through = channel_window_sum(through, before, after, a.dim() - 3)
            torch.mul(g_s, factor_s, out=grad_s)
            grad_s.addcmul_(through, a_s, value=-2.0 * alpha * beta / size)
        return _merge_groups(grad, groups), None, None, None, None, None


class LocalResponseNorm(nn.LocalResponseNorm):
    """`nn.LocalResponseNorm` with the same arguments and outputs, and a faster gradient where it
    measured faster (kernels/choice.py).

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
            return self.torch_forward(input)
        return chosen_forward(self, input, self.sliced_forward, self.torch_forward)

    def sliced_forward(self, input: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _LocalResponseNormFn.apply(
            input, self.size, self.alpha, self.beta, self.k, self.groups
        )
        return out

    def torch_forward(self, input: torch.Tensor) -> torch.Tensor:
        """nn.LocalResponseNorm's computation, one group of maps at a time; in float32 for
        bf16 and fp16 on the CPU, where its avg_pool3d has no kernel for them (torch 2.14)."""
        if input.device.type == "cpu" and input.dtype in (torch.bfloat16, torch.float16):
            return self.torch_forward(input.float()).to(input.dtype)
        if self.groups == 1:
            return super().forward(input)
        parts = input.chunk(self.groups, dim=1)
        size, alpha, beta, k = self.size, self.alpha, self.beta, self.k
        return torch.cat([F.local_response_norm(p, size, alpha, beta, k) for p in parts], dim=1)

    def extra_repr(self) -> str:
        groups = f", groups={self.groups}" if self.groups > 1 else ""
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}{groups}"
