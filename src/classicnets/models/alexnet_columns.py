"""AlexNet's two columns on two devices (Krizhevsky et al. 2012 §3.2): `split_columns` turns
the grouped one-device model into `TwoColumnAlexNet`, which computes the same function."""

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from classicnets.errors import UserError
from classicnets.kernels import Conv2d, LocalResponseNorm

# §3.2: the two columns, one per GPU. "The GPUs communicate only in certain layers": conv3
# and the fully connected layers take input from both columns; conv2, conv4 and conv5 only
# from their own (the grouped convs above).
COLUMN_GROUPS = (1, 2, 1, 2, 2)  # the convs' groups in the paper layout
STATE_NAMES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class AlexNetColumn(nn.Module):
    """One GPU's half of AlexNet: conv stages between exchanges, and its half of fc6, fc7."""

    def __init__(self, stages: list[nn.Sequential], hidden: list[nn.Sequential]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.hidden = nn.ModuleList(hidden)


class TwoColumnAlexNet(nn.Module):
    """A two-column AlexNet with each column on its own device, as trained on two GPUs (§3.2).

    Built from a grouped AlexNet by `split_columns`, it computes the same function, and its
    state_dict has the grouped model's keys and shapes, so checkpoints load into either.
    Activations cross between devices before conv3, fc6, fc7 and fc8, as in the paper; each
    column normalises its own maps (§3.3), as the grouped model's LRN (groups=2) does.
    """

    def __init__(self, grouped: nn.Module) -> None:  # an AlexNet (alexnet.py)
        super().__init__()
        features = list(cast(nn.Sequential, grouped.features))
        classifier = list(cast(nn.Sequential, grouped.classifier))
        convs = [i for i, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
        if tuple(getattr(features[i], "groups", 0) for i in convs) != COLUMN_GROUPS:
            raise UserError(
                "only an AlexNet with model.columns=2 (alexnet, alexnet_bn) has columns"
            )
        # The columns exchange maps once in the conv layers: before conv3, which sees all maps.
        stages = [range(0, convs[2]), range(convs[2], len(features))]
        linears = [i for i, layer in enumerate(classifier) if isinstance(layer, nn.Linear)]
        blocks = [range(linears[0], linears[1]), range(linears[1], linears[2])]
        with torch.device("meta"):  # shapes only: the grouped weights are loaded below
            self.columns = nn.ModuleList(
                AlexNetColumn(
                    [nn.Sequential(*(_half(features[i]) for i in span)) for span in stages],
                    [nn.Sequential(*(_half(classifier[i]) for i in span)) for span in blocks],
                )
                for _ in range(2)
            )
        self.columns.to_empty(device=next(grouped.parameters()).device)
        self.avgpool = cast(nn.Module, grouped.avgpool)
        self.fc8 = classifier[linears[2]]
        # (grouped layer name, the names of its halves), in the grouped state_dict's order
        self.layer_pairs: list[tuple[str, tuple[str, ...]]] = []
        for grouped_name, layers, spans, part in (
            ("features", features, stages, "stages"),
            ("classifier", classifier, blocks, "hidden"),
        ):
            for stage, span in enumerate(spans):
                for position, index in enumerate(span):
                    if next(layers[index].parameters(), None) is not None:
                        halves = tuple(f"columns.{c}.{part}.{stage}.{position}" for c in (0, 1))
                        self.layer_pairs.append((f"{grouped_name}.{index}", halves))
        self.layer_pairs.append((f"classifier.{linears[2]}", ("fc8",)))
        self.register_state_dict_post_hook(_merge_columns)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_split_into_columns)  # type: ignore[no-untyped-call]
        self.load_state_dict(grouped.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = cast(list[AlexNetColumn], list(self.columns))
        devices = [next(column.parameters()).device for column in columns]
        maps = [x.to(device) for device in devices]  # every GPU reads the whole image
        maps = [column.stages[0](m) for column, m in zip(columns, maps, strict=True)]
        maps = _gather(maps, devices)
        maps = [column.stages[1](m) for column, m in zip(columns, maps, strict=True)]
        # (N, 128, 6, 6) per column -> (N, 4608); each fc6 neuron sees both columns' 9216
        flat = [torch.flatten(self.avgpool(m), 1) for m in maps]
        for block in range(2):  # fc6, fc7 (§3.2: FC neurons see the whole layer below)
            flat = _gather(flat, devices)
            flat = [column.hidden[block](m) for column, m in zip(columns, flat, strict=True)]
        logits: torch.Tensor = self.fc8(_gather(flat, devices[:1])[0])
        return logits.to(x.device)


def _merge_columns(module: nn.Module, state: dict[str, Any], prefix: str, _: object) -> None:
    """state_dict hook: the columns' halves become the grouped model's tensors."""
    for grouped, halves in cast(TwoColumnAlexNet, module).layer_pairs:
        for name in STATE_NAMES:
            keys = [f"{prefix}{half}.{name}" for half in halves]
            if keys[0] in state:
                values = [state.pop(key) for key in keys]
                merged = values[0]
                if len(values) > 1 and merged.dim() > 0:  # not num_batches_tracked
                    merged = torch.cat([value.to(merged.device) for value in values])
                state[f"{prefix}{grouped}.{name}"] = merged


def _split_into_columns(module: nn.Module, state: dict[str, Any], prefix: str, *_: object) -> None:
    """load_state_dict hook: the grouped model's tensors are cut into the columns' halves."""
    for grouped, halves in cast(TwoColumnAlexNet, module).layer_pairs:
        for name in STATE_NAMES:
            key = f"{prefix}{grouped}.{name}"
            if key in state:
                value = state.pop(key)
                pieces = value.chunk(len(halves)) if value.dim() > 0 else [value] * 2
                for half, piece in zip(halves, pieces, strict=False):
                    state[f"{prefix}{half}.{name}"] = piece


def _half(layer: nn.Module) -> nn.Module:
    """A layer shaped like one column's half of `layer` (its weights are loaded after)."""
    if isinstance(layer, nn.Conv2d):
        kernel, stride, padding = layer.kernel_size[0], layer.stride[0], layer.padding
        return Conv2d(
            layer.in_channels // layer.groups,
            layer.out_channels // 2,
            kernel,
            stride=stride,
            padding=padding[0] if isinstance(padding, tuple) else padding,
            bias=layer.bias is not None,
        )
    if isinstance(layer, nn.BatchNorm2d):
        return nn.BatchNorm2d(layer.num_features // 2, eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features // 2, bias=layer.bias is not None)
    if isinstance(layer, LocalResponseNorm):  # one group per column
        return LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)
    return copy.deepcopy(layer)  # activations, pools, dropout: no state


def _gather(maps: list[torch.Tensor], devices: list[torch.device]) -> list[torch.Tensor]:
    """Both columns' maps, concatenated along channels, on each of `devices`."""
    return [torch.cat([m.to(device) for m in maps], dim=1) for device in devices]


def split_columns(grouped: nn.Module, devices: Sequence[torch.device]) -> TwoColumnAlexNet:
    """`grouped` (an AlexNet with columns=2) as two columns on `devices` (§3.2); fc8 joins the
    first. Inputs may be on any device; the logits come back on the input's device."""
    if len(devices) != 2:
        raise UserError(
            f"model.column_devices takes two devices, one per column; got {len(devices)}"
        )
    model = TwoColumnAlexNet(grouped)
    for column, device in zip(model.columns, devices, strict=True):
        column.to(device)
    model.fc8.to(devices[0])
    return model
