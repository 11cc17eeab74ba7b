"""The recipes of transforms.py, batched on (B, 3, H, W) tensors on any device.

Each random draw comes from a CPU torch.Generator passed in (so the values do not depend on the
device) and is moved to the images' device with `to_device`; nothing loops over images in Python.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from classicnets.data.transforms import LIGHTING_ALPHA_STD, RRC_RATIO, RRC_SCALE


def to_device(draws: Tensor, device: torch.device) -> Tensor:
    """A small CPU tensor of random draws on `device`, without making the host wait for the GPU.

    A copy from ordinary (pageable) memory to CUDA blocks until the queued kernels finish; from
    pinned memory it is queued like a kernel (PyTorch keeps the pinned block alive until then).
    """
    if device.type != "cuda" or draws.device.type != "cpu":
        return draws.to(device)
    return draws.pin_memory().to(device, non_blocking=True)


def resize_square(images: Tensor, side: int) -> Tensor:
    """uint8 (B, 3, s, s) -> uint8 (B, 3, side, side), antialiased bilinear like PIL's resize."""
    if images.shape[-1] == side and images.shape[-2] == side:
        return images
    resized = F.interpolate(
        images.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def crop_at(
    images: Tensor, top: Tensor, left: Tensor, size: int, flip: Tensor | None = None
) -> Tensor:
    """Per-image crops at (top, left), mirrored where `flip`: (B, C, H, W) -> (B, C, size, size).

    One gather over the flattened pixels does both (mirroring just reverses the column index).
    """
    batch, channels, height, width = images.shape
    device = images.device
    steps = torch.arange(size, device=device)
    rows = to_device(top, device)[:, None] + steps  # (B, size)
    column_steps = steps.expand(batch, size)
    if flip is not None:
        column_steps = torch.where(to_device(flip, device)[:, None], size - 1 - steps, steps)
    columns = to_device(left, device)[:, None] + column_steps  # (B, size)
    index = (rows * width)[:, :, None] + columns[:, None, :]  # (B, size, size) flat positions
    flat = images.reshape(batch, channels, height * width)
    crops = flat.gather(2, index.view(batch, 1, size * size).expand(batch, channels, -1))
    return crops.view(batch, channels, size, size)


def center_crop(images: Tensor, size: int) -> Tensor:
    # same rounding as torchvision's center_crop
    top = round((images.shape[-2] - size) / 2.0)
    left = round((images.shape[-1] - size) / 2.0)
    return images[..., top : top + size, left : left + size]


def flip_some(images: Tensor, flip: Tensor) -> Tensor:
    """Mirror, in place, the images where `flip` (B,) is True; returns `images`."""
    chosen = to_device(flip.nonzero().flatten(), images.device)  # nonzero on CPU: no GPU sync
    images[chosen] = images[chosen].flip(-1)
    return images


def random_crop(
    images: Tensor,
    size: int,
    padding: int,
    generator: torch.Generator,
    flip: Tensor | None = None,
    padding_mode: str = "constant",
) -> Tensor:
    """RandomCrop(size, padding, padding_mode) like torchvision's (zero fill by default);
    mirrored where `flip`."""
    if padding:
        images = F.pad(images, (padding, padding, padding, padding), mode=padding_mode)
    batch, _, height, width = images.shape
    top = torch.randint(0, height - size + 1, (batch,), generator=generator)
    left = torch.randint(0, width - size + 1, (batch,), generator=generator)
    return crop_at(images, top, left, size, flip)


def boxes_crop(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Resample each box (x1, y1, x2, y2 in pixel edges) of the batch to size x size.

    roi_align averages ceil(box / size) samples per output pixel, so shrinking is antialiased.
    """
    indices = torch.arange(len(images), dtype=torch.float32)[:, None]
    rois = to_device(torch.cat([indices, boxes.to(torch.float32)], dim=1), images.device)
    crops: Tensor = roi_align(images.float(), rois, (size, size), spatial_scale=1.0, aligned=True)
    return crops


def random_resized_crop(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """torchvision's RandomResizedCrop, vectorised: 10 tries per image, then a centre crop."""
    batch, _, height, width = images.shape
    tries = 10
    area = height * width
    target_area = area * torch.empty(batch, tries).uniform_(*RRC_SCALE, generator=generator)
    log_ratio = torch.empty(batch, tries).uniform_(
        math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]), generator=generator
    )
    aspect = log_ratio.exp()
    crop_w = (target_area * aspect).sqrt().round().long()
    crop_h = (target_area / aspect).sqrt().round().long()
    fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
    first = fits.int().argmax(dim=1)  # first try that fits
    picked = fits.any(dim=1)
    crop_w = torch.where(picked, crop_w.gather(1, first[:, None])[:, 0], 0)
    crop_h = torch.where(picked, crop_h.gather(1, first[:, None])[:, 0], 0)
    # fallback: the whole image when its aspect is inside the ratio range, else clipped to it
    fallback_w, fallback_h = _fallback_size(height, width)
    crop_w = torch.where(picked, crop_w, fallback_w)
    crop_h = torch.where(picked, crop_h, fallback_h)
    uniform = torch.rand(batch, 2, generator=generator)
    top = torch.where(
        picked, (uniform[:, 0] * (height - crop_h + 1)).floor().long(), (height - crop_h) // 2
    )
    left = torch.where(
        picked, (uniform[:, 1] * (width - crop_w + 1)).floor().long(), (width - crop_w) // 2
    )
    boxes = torch.stack([left, top, left + crop_w, top + crop_h], dim=1)
    return boxes_crop(images, boxes, size)


def _fallback_size(height: int, width: int) -> tuple[int, int]:
    in_ratio = width / height
    if in_ratio < min(RRC_RATIO):
        return width, round(width / min(RRC_RATIO))
    if in_ratio > max(RRC_RATIO):
        return round(height * max(RRC_RATIO)), height
    return width, height


def random_scale_crop(
    images: Tensor, size: int, scale_range: tuple[int, int], generator: torch.Generator
) -> Tensor:
    """VGG §3.1: rescale the square images to S ~ U{scale_range}, take a random size crop.

    Done as one resampled box per image in the stored image: box side = side * size / S.
    """
    batch, _, side, _ = images.shape
    low, high = scale_range
    scales = torch.randint(low, high + 1, (batch,), generator=generator)
    uniform = torch.rand(batch, 2, generator=generator)
    top = (uniform[:, 0] * (scales - size + 1)).floor()
    left = (uniform[:, 1] * (scales - size + 1)).floor()
    factor = side / scales.double()  # stored pixels per rescaled pixel
    boxes = torch.stack([left, top, left + size, top + size], dim=1).double() * factor[:, None]
    return boxes_crop(images, boxes, size)


def lighting_shift(
    batch: int, eigenvalues: Tensor, eigenvectors: Tensor, generator: torch.Generator
) -> Tensor:
    """AlexNet §4.1 PCA lighting: one RGB shift per image, (B, 3), on the [0, 1] scale."""
    alpha = torch.randn(batch, 3, generator=generator) * LIGHTING_ALPHA_STD
    return (alpha * eigenvalues.float()) @ eigenvectors.float()


def normalise(images: Tensor, mean: Tensor, std: Tensor, shift: Tensor | None = None) -> Tensor:
    """0..255 images (uint8 or float) -> float32 ((x / 255 + shift) - mean) / std.

    Works on (B, 3, H, W) and on (B, V, 3, H, W); mean, std are (3,) on the images' device.
    """
    x = images.float() * (1.0 / 255.0)  # a new tensor: the caller's images stay untouched
    if shift is not None:  # (B, 3) per-image shifts, training batches only
        x = x.add_(to_device(shift, x.device).view(-1, 3, 1, 1))
    return x.sub_(mean.view(3, 1, 1)).div_(std.view(3, 1, 1))


def ten_crops(images: Tensor, size: int) -> Tensor:
    """(B, 3, H, W) -> (B, 10, 3, size, size) in torchvision's TenCrop order."""
    height, width = images.shape[-2:]
    corners = [
        images[..., :size, :size],
        images[..., :size, width - size :],
        images[..., height - size :, :size],
        images[..., height - size :, width - size :],
        center_crop(images, size),
    ]
    mirrored = images.flip(-1)
    corners += [
        mirrored[..., :size, :size],
        mirrored[..., :size, width - size :],
        mirrored[..., height - size :, :size],
        mirrored[..., height - size :, width - size :],
        center_crop(mirrored, size),
    ]
    return torch.stack(corners, dim=1)
