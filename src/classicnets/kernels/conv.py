"""`nn.Conv2d` with the weight gradient computed as one matrix product on the CPU.

oneDNN, which runs PyTorch's CPU convolutions, computes the forward pass and the input gradient
at or above the machine's matmul rate, but the weight gradient well below it: at batch 128, 2
threads, 0.73 of the matmul rate for alexnet_cifar's layers after conv1, and 0.30 to 0.78 for
vgg16_bn_cifar's (0.30 on its 2x2 maps). The weight gradient is a matrix product: with the
input unfolded into patches (im2col; Chellapilla, Puri & Simard 2006, as Caffe computes it),
dL/dW = grad_out^T @ patches, one GEMM with K = batch x output pixels, which ran at 0.79 to 0.90
of the matmul rate on the same layers (benchmarks/conv_weight_grad.py, benchmarks/RESULTS.md).
In channels_last memory the patch matrix is a strided view of the zero-padded input, copied once,
and the product comes out in the weight's own channels_last order. Forward and input gradient
stay with oneDNN; everything else falls back to `nn.Conv2d` unchanged. Which of the two weight
gradients a layer uses is measured per layer shape on the machine that runs (kernels/choice.py):
on an AMD EPYC Zen 5 and an Intel Xeon with AMX oneDNN's was ahead on most layers, on the
earlier AVX2 EPYC the GEMM on most layers with 200k weights or more.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from classicnets.kernels.choice import chosen_forward

# Elements of one chunk's patch matrix (16 MB of float32): the batch is unfolded a few images
# at a time, so a large batch never holds the whole patch matrix (9x its input for 3x3).
CHUNK_ELEMENTS = 2**22

Pair = tuple[int, int]


def patch_matrix(
    x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> torch.Tensor:
    """x (N, C, H, W) unfolded into (N * out_h * out_w, kh * kw * C): one row per output pixel,
    its receptive field in (kernel row, kernel column, map) order."""
    batch, maps, height, width = x.shape
    nhwc = x.permute(0, 2, 3, 1)
    if padding != (0, 0):
        padded = x.new_zeros(batch, height + 2 * padding[0], width + 2 * padding[1], maps)
        padded[:, padding[0] : padding[0] + height, padding[1] : padding[1] + width] = nhwc
        nhwc = padded
    out_h = (nhwc.shape[1] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (nhwc.shape[2] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    s_n, s_h, s_w, s_c = nhwc.stride()
    patches = nhwc.as_strided(
        (batch, out_h, out_w, kernel[0], kernel[1], maps),
        (s_n, s_h * stride[0], s_w * stride[1], s_h * dilation[0], s_w * dilation[1], s_c),
        nhwc.storage_offset(),
    )
    return patches.reshape(batch * out_h * out_w, kernel[0] * kernel[1] * maps)


def weight_grad(
    x: torch.Tensor,
    grad_out: torch.Tensor,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> torch.Tensor:
    """dL/dW (out_maps, in_maps, kh, kw), in channels_last strides, as grad_out^T @ patches
    summed over chunks of the batch."""
    batch, in_maps = x.shape[:2]
    out_maps, pixels = grad_out.shape[1], grad_out.shape[2] * grad_out.shape[3]
    rows = grad_out.permute(0, 2, 3, 1).reshape(batch * pixels, out_maps)  # a view if NHWC
    columns = kernel[0] * kernel[1] * in_maps
    per_chunk = max(1, CHUNK_ELEMENTS // (pixels * columns))
    grad: torch.Tensor | None = None
    for start in range(0, batch, per_chunk):
        length = min(per_chunk, batch - start)
        patches = patch_matrix(x.narrow(0, start, length), kernel, stride, padding, dilation)
        chunk_rows = rows[start * pixels : (start + length) * pixels].t()
        # Out of place, so torch.utils.flop_counter counts it (it skips addmm_).
        grad = chunk_rows @ patches if grad is None else torch.addmm(grad, chunk_rows, patches)
    assert grad is not None
    return grad.view(out_maps, kernel[0], kernel[1], in_maps).permute(0, 3, 1, 2)


class _Conv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.constants = (stride, padding, dilation, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, has_bias = ctx.constants
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_out = grads[0]
        grad_x = grad_bias = grad_weight = None
        if need_x:  # oneDNN, as in nn.Conv2d; asking it for the bias gradient too would make
            # it compute the weight gradient with it
            grad_x = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                weight,
                bias_sizes=None,
                stride=list(stride),
                padding=list(padding),
                dilation=list(dilation),
                transposed=False,
                output_padding=[0, 0],
                groups=1,
                output_mask=[True, False, False],
            )[0]
        if need_bias and has_bias:
            grad_bias = grad_out.sum((0, 2, 3))
        if need_weight:
            kernel = (weight.shape[2], weight.shape[3])
            grad_weight = weight_grad(x, grad_out, kernel, stride, padding, dilation)
        return grad_x, grad_weight, grad_bias, None, None, None


class Conv2d(nn.Conv2d):
    """nn.Conv2d, same arguments, parameters and outputs; when training on the CPU with
    channels_last input, its weight gradient is the GEMM above (tested against nn.Conv2d's)
    where that measured faster."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.gemm_applies(input):
            return super().forward(input)
        return chosen_forward(self, input, self.gemm_forward, super().forward)

    def gemm_forward(self, input: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _Conv2dFn.apply(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation
        )
        return out

    def gemm_applies(self, input: torch.Tensor) -> bool:
        return (
            torch.is_grad_enabled()
            and self.weight.requires_grad
            and input.device.type == "cpu"
            and input.dim() == 4
            and input.shape[0] > 0  # an empty batch has no chunks to sum; nn.Conv2d handles it
            and input.dtype == self.weight.dtype
            and input.is_contiguous(memory_format=torch.channels_last)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)  # not "same" / "valid"
            and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling()
        )
