"""The configured model: built from model.* (ModelConfig), started from model.weights, and with
model.column_devices its two AlexNet columns on two devices (AlexNet §3.2)."""

from typing import Any

from torch import nn

from classicnets.config import ModelConfig, knob_values
from classicnets.device import pick_device
from classicnets.errors import UserError
from classicnets.models.alexnet import TWO_COLUMN_MODELS, AlexNet, split_columns
from classicnets.models.catalog import build_model, check_input_size, model_info
from classicnets.models.pretrained import freeze_features, load_pretrained


def model_options(cfg: ModelConfig) -> dict[str, Any]:
    """The architecture knobs the user set (None keeps the builder's paper default)."""
    return knob_values(cfg)


def check_model_config(cfg: ModelConfig) -> None:
    """Fail on an unknown model or a knob it does not take, before any data is read."""
    info = model_info(cfg.name)
    unknown = sorted(set(model_options(cfg)) - set(info.options))
    if unknown:
        raise UserError(
            f"model {info.name} does not take model.{unknown[0]}; it takes "
            f"{', '.join(info.options) or 'no options'}"
        )
    if cfg.column_devices and info.name not in TWO_COLUMN_MODELS:
        raise UserError(
            f"model.column_devices splits the two columns of {' or '.join(TWO_COLUMN_MODELS)} "
            f"over two devices; {info.name} has no columns"
        )


def build_model_for(cfg: ModelConfig, num_classes: int, image_size: int) -> nn.Module:
    """The configured model on the CPU, or with model.column_devices its two columns placed
    on those devices (AlexNet §3.2); the caller moves a one-device model."""
    check_input_size(cfg.name, image_size)
    model = build_model(cfg.name, num_classes=num_classes, **model_options(cfg))
    if cfg.weights:
        load_pretrained(model, cfg.weights, cfg.name, num_classes)
    if cfg.freeze == "features":
        freeze_features(model)
    if cfg.column_devices:
        if not isinstance(model, AlexNet):
            raise UserError(f"model.column_devices: {cfg.name} has no columns to split")
        model = split_columns(model, [pick_device(name) for name in cfg.column_devices])
    return model


def load_state_strict(model: nn.Module, state: dict[str, Any], source: str) -> None:
    """Strict load_state_dict; another architecture or class count is a one-line UserError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = (f"{len(missing)} missing keys (e.g. {missing[:2]}), " if missing else "") + (
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]}), " if unexpected else ""
        )
        if wrong:
            key = wrong[0]
            detail += (
                f"shape mismatch at {key}: file {tuple(state[key].shape)} vs model "
                f"{tuple(own[key].shape)} (another class count or architecture?)"
            )
        raise UserError(f"{source} does not fit this model: {detail.rstrip(', ')}")
    model.load_state_dict(state, strict=True)
