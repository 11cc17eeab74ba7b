"""Pretrained ImageNet weights from torchvision, ported into the registry's models.

torchvision's `alexnet` is the one-tower "one weird trick" net (arXiv:1404.5997), our
`alexnet_owt`; its VGGs, `resnet18` and `googlenet` have same-named registry models. Every
registry model here keeps torchvision's module names, so a torchvision state_dict loads as it
is (tests check logits against torchvision's own model). Weights come from torchvision's
download cache, a download (which needs the network), or a local `.pth` file.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from classicnets.errors import UserError
from classicnets.models import build_model
from classicnets.models.build import load_state_strict

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "DEFAULT"  # torchvision's ImageNet-1k weights of the model
NETWORK_TIMEOUT_SECONDS = 3.0  # offline machines must fail at once, not after minutes


@dataclass(frozen=True)
class ZooEntry:
    """A torchvision model with ImageNet weights and the registry model they load into.

    top1/top5 are torchvision's published ImageNet-1k val accuracies (its model table), used
    when the weights' meta["_metrics"] lacks them.
    """

    name: str  # torchvision's builder name
    model: str  # registry name
    weights: str  # torchvision weights enum entry
    top1: float
    top5: float


ZOO_TABLE: tuple[ZooEntry, ...] = (
    ZooEntry("alexnet", "alexnet_owt", "AlexNet_Weights.IMAGENET1K_V1", 56.522, 79.066),
    ZooEntry("vgg11", "vgg11", "VGG11_Weights.IMAGENET1K_V1", 69.020, 88.628),
    ZooEntry("vgg11_bn", "vgg11_bn", "VGG11_BN_Weights.IMAGENET1K_V1", 70.370, 89.810),
    ZooEntry("vgg13", "vgg13", "VGG13_Weights.IMAGENET1K_V1", 69.928, 89.246),
    ZooEntry("vgg13_bn", "vgg13_bn", "VGG13_BN_Weights.IMAGENET1K_V1", 71.586, 90.374),
    ZooEntry("vgg16", "vgg16", "VGG16_Weights.IMAGENET1K_V1", 71.592, 90.382),
    ZooEntry("vgg16_bn", "vgg16_bn", "VGG16_BN_Weights.IMAGENET1K_V1", 73.360, 91.516),
    ZooEntry("vgg19", "vgg19", "VGG19_Weights.IMAGENET1K_V1", 72.376, 90.876),
    ZooEntry("vgg19_bn", "vgg19_bn", "VGG19_BN_Weights.IMAGENET1K_V1", 74.218, 91.842),
    ZooEntry("resnet18", "resnet18", "ResNet18_Weights.IMAGENET1K_V1", 69.758, 89.078),
    ZooEntry("googlenet", "googlenet", "GoogLeNet_Weights.IMAGENET1K_V1", 69.778, 89.530),
)
ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in ZOO_TABLE}


def resolve_models(names: Sequence[str]) -> list[ZooEntry]:
    """Zoo entries for torchvision or registry names; "all" means every entry."""
    if not names:
        raise UserError("name at least one model (or all); choices: " + ", ".join(ZOO))
    if "all" in names:
        return list(ZOO_TABLE)
    by_registry = {entry.model: entry for entry in ZOO_TABLE}
    entries = []
    for name in names:
        entry = ZOO.get(name) or by_registry.get(name)
        if entry is None:
            raise UserError(
                f"no pretrained weights for {name!r}; models with torchvision ImageNet weights: "
                f"{', '.join(ZOO)} (or all)"
            )
        if entry not in entries:
            entries.append(entry)
    return entries


def weights_enum(entry: ZooEntry) -> Any:
    """torchvision's weights enum member: its metadata and transforms need no download."""
    from torchvision.models import get_weight

    return get_weight(entry.weights)


def published_accuracy(entry: ZooEntry) -> tuple[float, float]:
    """(top-1, top-5) torchvision publishes for these weights, from their metadata if present."""
    metrics = weights_enum(entry).meta.get("_metrics", {}).get("ImageNet-1K", {})
    return float(metrics.get("acc@1", entry.top1)), float(metrics.get("acc@5", entry.top5))


def build_zoo_model(entry: ZooEntry) -> nn.Module:
    """The registry model with 1000 classes, set up as torchvision sets it for its weights."""
    import torchvision

    model = build_model(entry.model, num_classes=1000)
    if isinstance(model, torchvision.models.GoogLeNet):
        # torchvision's GoogLeNet weights were ported from TensorFlow and expect inputs on
        # [-1, 1]; torchvision turns transform_input on whenever it loads them, and so do we.
        model.transform_input = True
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a `.pth` file: torchvision's, a DataParallel one, or a checkpoint."""
    if not path.is_file():
        raise UserError(f"--weights: no file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises many types for a bad or cut-off file
        raise UserError(
            f"--weights: {path} is truncated or not a PyTorch weights file ({type(error).__name__})"
        ) from None
    if isinstance(state, dict):
        for key in ("model", "state_dict"):  # classicnets and common training checkpoints
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise UserError(f"--weights: {path} holds no state_dict (parameter names -> tensors)")
    if all(str(key).startswith("module.") for key in state):  # saved from nn.DataParallel
        state = {str(key).removeprefix("module."): value for key, value in state.items()}
    return {str(key): value for key, value in state.items()}


def _unreachable(url: str, timeout: float) -> str | None:
    """Why `url`'s host cannot be reached within `timeout` seconds, or None if it can."""
    host = urlparse(url).hostname or url
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(f"{type(error).__name__}: {error}")

    # A thread, because name resolution ignores socket timeouts and may hang for long.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"no answer from {host} within {timeout:g} s"


def _cache_file(entry: ZooEntry) -> Path:
    """Where torchvision's download cache keeps these weights (TORCH_HOME/hub/checkpoints)."""
    file_name = Path(urlparse(weights_enum(entry).url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _offline_advice(entry: ZooEntry) -> str:
    cached = _cache_file(entry)
    return (
        f"pass a local file with --weights PATH (torchvision's {cached.name}, fetched elsewhere "
        f"from {weights_enum(entry).url}) or put it in {cached.parent}"
    )


def check_weights_available(entries: Sequence[ZooEntry], weights: str) -> None:
    """Fail at once, before any data is read, when weights are neither at hand nor reachable."""
    if weights != DEFAULT_WEIGHTS:
        if not Path(weights).is_file():
            raise UserError(f"--weights: no file at {weights}")
        return
    for entry in entries:
        if _cache_file(entry).is_file():
            continue
        reason = _unreachable(weights_enum(entry).url, NETWORK_TIMEOUT_SECONDS)
        if reason is not None:
            raise UserError(
                f"cannot download the {entry.name} weights (offline? {reason}); "
                f"{_offline_advice(entry)}"
            )


def download_state_dict(entry: ZooEntry) -> dict[str, torch.Tensor]:
    """torchvision's weights from its download cache, else downloaded (needs the network)."""
    cached = _cache_file(entry)
    if cached.is_file():
        log.info("%s: weights from the torchvision cache %s", entry.name, cached)
        return read_state_dict(cached)
    check_weights_available([entry], DEFAULT_WEIGHTS)
    try:
        state: dict[str, torch.Tensor] = weights_enum(entry).get_state_dict(
            progress=True, check_hash=True
        )
    except (URLError, OSError, RuntimeError) as error:
        raise UserError(
            f"downloading the {entry.name} weights failed ({error}); {_offline_advice(entry)}"
        ) from None
    return state


def load_zoo_model(entry: ZooEntry, weights: str = DEFAULT_WEIGHTS) -> nn.Module:
    """The registry model for `entry` with torchvision's weights (DEFAULT) or a local file."""
    model = build_zoo_model(entry)
    if weights == DEFAULT_WEIGHTS:
        state = download_state_dict(entry)
        source = f"torchvision's {entry.weights}"
    else:
        state = read_state_dict(Path(weights))
        source = f"--weights {weights}"
    load_state_strict(model, state, source)
    return model.eval()
