"""Dropout (Hinton et al. 2012, arXiv:1207.0580; AlexNet §4.2) with its mask drawn by
torch.rand on the CPU, where that measured faster than PyTorch's bernoulli_: 2.6 vs 20 ms at
(128, 4096) forward + backward, Intel Xeon with AMX, 2 threads."""

import torch
from torch import nn

from classicnets.kernels.choice import chosen_forward


class Dropout(nn.Dropout):
    """nn.Dropout, inverted as torch's (kept units are scaled by 1 / (1 - p) in training, so
    testing uses the weights as they are). The same units are kept with the same probability;
    only the random stream differs. Other devices, and the in-place form, use nn.Dropout."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self.inplace or input.device.type != "cpu" or not 0 < self.p < 1:
            return super().forward(input)
        return chosen_forward(self, input, self.rand_mask_forward, super().forward)

    def rand_mask_forward(self, input: torch.Tensor) -> torch.Tensor:
        keep = torch.rand_like(input) >= self.p
        return input * keep.to(input.dtype).mul_(1.0 / (1.0 - self.p))
