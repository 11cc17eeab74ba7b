"""`nn.Conv2d` computed as matrix products on the CPU, where that measured faster.

oneDNN, which runs PyTorch's CPU convolutions, is fast on large maps but slow on small ones and
on some weight gradients. Two measured cases (benchmarks/conv_weight_grad.py,
benchmarks/profile_step.py, benchmarks/RESULTS.md): at batch 128 and 2 threads, on the earlier
AVX2 EPYC its fp32 weight gradient ran at 0.30 to 0.78 of the matmul rate; on an Intel Xeon with
AMX, in bf16, a 3x3 convolution of 512 maps on vgg16_bn_cifar's 2x2 maps took 11 ms forward,
11 ms for the input gradient and 31 ms for the weight gradient, against 3.2, 3.1 and 2.1 ms as
matrix products. With the input unfolded into patches (im2col; Chellapilla, Puri & Simard 2006,
as Caffe computes it) every part of a convolution is one GEMM:

- forward: out = patches(x) @ W^T, K = kernel area x input maps;
- input gradient (stride 1): a convolution of grad_out with the kernel flipped and its maps
  swapped, padded by kernel - 1 - padding: the same GEMM on patches(grad_out);
- weight gradient: dL/dW = grad_out^T @ patches(x), K = batch x output pixels.

In channels_last memory the patch matrix is a strided view of the zero-padded input, copied once,
and each product comes out in channels_last order. Two fast paths: "gemm" (all three, stride 1
and dilation 1 only) and "gemm_weight_grad" (oneDNN's forward and input gradient, the GEMM
weight gradient); under autocast both compute in the autocast dtype, as torch's convolution
does. Which path a layer takes, torch's included, is measured per layer shape, precision and
machine (kernels/choice.py): on the Xeon with AMX, bf16, "gemm" won on 4x4 and 2x2 maps and
torch's on larger ones; on the AVX2 EPYC, fp32, the GEMM weight gradient won on most layers with
200k weights or more.
"""

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from classicnets.kernels.choice import Paths, chosen_forward

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


def conv_gemm(x: torch.Tensor, weight: torch.Tensor, padding: Pair) -> torch.Tensor:
    """A stride-1, dilation-1 convolution of x (N, C, H, W) by weight (O, C, kh, kw) as
    patches(x) @ W^T, a few images at a time; the output (N, O, H', W') in channels_last."""
    batch, out_maps = x.shape[0], weight.shape[0]
    kernel = (weight.shape[2], weight.shape[3])
    out_h = x.shape[2] + 2 * padding[0] - kernel[0] + 1
    out_w = x.shape[3] + 2 * padding[1] - kernel[1] + 1
    matrix = weight.permute(0, 2, 3, 1).reshape(out_maps, -1).t()  # (kh * kw * C, O)
    out = x.new_empty(batch, out_h, out_w, out_maps)
    per_chunk = max(1, CHUNK_ELEMENTS // max(1, out_h * out_w * matrix.shape[0]))
    for start in range(0, batch, per_chunk):
        length = min(per_chunk, batch - start)
        patches = patch_matrix(x.narrow(0, start, length), kernel, (1, 1), padding, (1, 1))
        torch.mm(patches, matrix, out=out.narrow(0, start, length).view(-1, out_maps))
    return out.permute(0, 3, 1, 2)


def input_grad_gemm(grad_out: torch.Tensor, weight: torch.Tensor, padding: Pair) -> torch.Tensor:
    """dL/dx of a stride-1 convolution: grad_out convolved with the flipped kernel, maps swapped."""
    flipped = weight.flip(2, 3).transpose(0, 1)  # (C, O, kh, kw)
    pad = (weight.shape[2] - 1 - padding[0], weight.shape[3] - 1 - padding[1])
    return conv_gemm(grad_out, flipped, pad)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype torch's convolution would compute in here: autocast's, else the input's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


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
        all_gemm: bool,
    ) -> torch.Tensor:
        dtype = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            xc, wc = x.to(dtype), weight.to(dtype)
            if all_gemm:
                out = conv_gemm(xc, wc, padding)
                if bias is not None:
                    out = out + bias.to(dtype).view(1, -1, 1, 1)
            else:
                out = F.conv2d(
                    xc, wc, None if bias is None else bias.to(dtype), stride, padding, dilation
                )
        ctx.save_for_backward(xc, wc)
        ctx.constants = (
            stride,
            padding,
            dilation,
            bias is not None,
            all_gemm,
            x.dtype,
            weight.dtype,
        )
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, has_bias, all_gemm, x_dtype, weight_dtype = ctx.constants
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_out = grads[0].to(x.dtype)
        grad_x = grad_bias = grad_weight = None
        with torch.autocast(x.device.type, enabled=False):
            if need_x and all_gemm:
                grad_x = input_grad_gemm(grad_out, weight, padding).to(x_dtype)
            elif need_x:  # oneDNN, as in nn.Conv2d; asking it for the bias gradient too would
                # make it compute the weight gradient with it
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
                )[0].to(x_dtype)
            if need_bias and has_bias:
                total = torch.promote_types(grad_out.dtype, torch.float32)  # bf16 sums in fp32
                grad_bias = grad_out.sum((0, 2, 3), dtype=total).to(weight_dtype)
            if need_weight:
                kernel = (weight.shape[2], weight.shape[3])
                grad_weight = weight_grad(x, grad_out, kernel, stride, padding, dilation)
                grad_weight = grad_weight.to(weight_dtype)
        return grad_x, grad_weight, grad_bias, None, None, None, None


class Conv2d(nn.Conv2d):
    """nn.Conv2d, same arguments, parameters and outputs; on the CPU with channels_last input,
    the matrix-product paths above (tested against nn.Conv2d's) where they measured faster."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        paths = self.fast_paths(input)
        if not paths:
            return super().forward(input)
        return chosen_forward(self, input, paths, super().forward)

    def fast_paths(self, input: torch.Tensor) -> Paths:
        """The matrix-product paths that compute this layer for `input` (none: torch's)."""
        if not (
            input.device.type == "cpu"
            and input.dim() == 4
            and input.shape[0] > 0  # an empty batch has no chunks to sum; nn.Conv2d handles it
            and (input.dtype == self.weight.dtype or torch.is_autocast_enabled("cpu"))
            and input.is_contiguous(memory_format=torch.channels_last)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)  # not "same" / "valid"
            and not torch.compiler.is_compiling()
        ):
            return {}
        paths: Paths = {}
        kernel = self.kernel_size
        if (
            self.stride == (1, 1)
            and self.dilation == (1, 1)
            and all(p <= k - 1 for p, k in zip(self.padding, kernel, strict=True))
        ):
            paths["gemm"] = functools.partial(self.matmul_forward, all_gemm=True)
        if torch.is_grad_enabled() and self.weight.requires_grad:
            paths["gemm_weight_grad"] = functools.partial(self.matmul_forward, all_gemm=False)
        return paths

    def matmul_forward(self, input: torch.Tensor, all_gemm: bool) -> torch.Tensor:
        out: torch.Tensor = _Conv2dFn.apply(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, all_gemm
        )
        return out
