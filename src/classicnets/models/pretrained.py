"""Starting a model from pretrained weights: torchvision's published ImageNet weights or a
local state_dict, with the classifier head replaced when the class count differs.

`model.weights=torchvision:DEFAULT` (or another tag, e.g. torchvision:IMAGENET1K_V1) reads the
file torchvision publishes for the registry models whose layout equals torchvision's (the
parity tests in tests/test_models.py). Nothing downloads at run time: the file must already be
in torch's hub cache, or be passed as model.weights=PATH. Every weight loads strictly except
the head: the Linear layers that output `num_classes`, kept freshly initialised when the file
was trained for another class count.
"""

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classicnets.errors import UserError

log = logging.getLogger(__name__)

TORCHVISION_PREFIX = "torchvision:"
# Registry name -> torchvision model name, for the models whose state_dict is torchvision's.
TORCHVISION_NAMES: dict[str, str] = {
    "alexnet_owt": "alexnet",
    **{name: name for name in ("vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "googlenet")},
    **{f"vgg{depth}_bn": f"vgg{depth}_bn" for depth in (11, 13, 16, 19)},
}
# The module of each family that is not the body (model.freeze=features keeps it trainable).
CLASSIFIER_MODULES = ("classifier", "fc")


def torchvision_weights_file(model_name: str, tag: str) -> Path:
    """The cached file of torchvision's `tag` weights for `model_name`, or a one-line
    UserError that names the file to download and pass as model.weights=PATH instead."""
    import torchvision

    if model_name not in TORCHVISION_NAMES:
        raise UserError(
            f"model.weights=torchvision:{tag}: {model_name} has no torchvision counterpart; "
            f"models with torchvision weights: {', '.join(sorted(TORCHVISION_NAMES))}"
        )
    weights_enum = torchvision.models.get_model_weights(TORCHVISION_NAMES[model_name])
    if tag not in weights_enum.__members__:
        raise UserError(
            f"model.weights: torchvision has no {tag} weights for {model_name}; "
            f"choose from {', '.join(weights_enum.__members__)}"
        )
    url = str(weights_enum[tag].url)
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise UserError(
            f"model.weights=torchvision:{tag} needs {path.name}, which is not in {path.parent} "
            f"(nothing downloads at run time): fetch {url} and pass model.weights=PATH"
        )
    return path


def weights_path(spec: str, model_name: str) -> Path:
    """The file behind a model.weights value: torchvision:TAG or a path."""
    if spec.startswith(TORCHVISION_PREFIX):
        return torchvision_weights_file(model_name, spec[len(TORCHVISION_PREFIX) :] or "DEFAULT")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"model.weights: no file at {path}")
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict file, or the weights inside a classicnets checkpoint, without unpickling."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise UserError(
            f"model.weights: {path} is truncated or not a weights file ({type(error).__name__})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"model.weights: {path} holds no state_dict of tensors")
    return state


def head_layers(model: nn.Module, num_classes: int) -> list[str]:
    """The Linear layers that output the class scores (GoogLeNet also has two auxiliary ones)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == num_classes
    ]


def load_pretrained(model: nn.Module, spec: str, model_name: str, num_classes: int) -> list[str]:
    """Load model.weights into `model`: strictly, except that head layers trained for another
    class count stay new. Returns the new layers' names (and logs them)."""
    path = weights_path(spec, model_name)
    state = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise UserError(
            f"model.weights: {path.name} does not fit {model_name}: "
            f"{len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    heads = head_layers(model, num_classes)
    new: list[str] = []
    for key in own:
        if tuple(state[key].shape) == tuple(own[key].shape):
            continue
        layer = key.rsplit(".", 1)[0]
        if layer not in heads:
            raise UserError(
                f"model.weights: {path.name} does not fit {model_name}: shape mismatch at "
                f"{key}: file {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
            )
        if layer not in new:
            new.append(layer)
    kept = {key: value for key, value in state.items() if key.rsplit(".", 1)[0] not in new}
    model.load_state_dict({**own, **kept}, strict=True)
    if new:
        log.info(
            "model.weights: loaded %s; new layers for %d classes: %s",
            path.name,
            num_classes,
            _describe(model, new, state),
        )
    else:
        log.info("model.weights: loaded %s (every layer)", path.name)
    return new


def _describe(model: nn.Module, layers: list[str], state: dict[str, Any]) -> str:
    modules = dict(model.named_modules())
    parts = []
    for name in layers:
        module = modules[name]
        assert isinstance(module, nn.Linear)
        was = int(state[f"{name}.weight"].shape[0])
        parts.append(f"{name} ({module.in_features} -> {module.out_features}, was {was})")
    return ", ".join(parts)


def body_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters outside the classifier (the `classifier` or `fc` module)."""
    return [
        (name, parameter)
        for name, parameter in model.named_parameters()
        if name.split(".", 1)[0] not in CLASSIFIER_MODULES
    ]


def freeze_features(model: nn.Module) -> int:
    """Stop gradients to the body (model.freeze=features); returns the frozen count.

    BatchNorm layers in the body keep updating their running statistics in train mode.
    """
    frozen = 0
    for _, parameter in body_parameters(model):
        parameter.requires_grad_(False)
        frozen += parameter.numel()
    return frozen


def optimizer_groups(model: nn.Module, body_lr_scale: float, lr: float) -> list[dict[str, Any]]:
    """Parameter groups: the body at lr x body_lr_scale, the classifier at lr; frozen
    parameters are left out."""
    body_ids = {id(parameter) for _, parameter in body_parameters(model)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    body = [p for p in trainable if id(p) in body_ids]
    head = [p for p in trainable if id(p) not in body_ids]
    groups = [{"params": head, "lr": lr}]
    if body:
        groups.append({"params": body, "lr": lr * body_lr_scale})
    return [group for group in groups if group["params"]]
