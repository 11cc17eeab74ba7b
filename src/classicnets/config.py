# Over 400 lines: the typed fields of every config section are one contract (STYLE §3).
"""Typed run configuration: nested frozen dataclasses, YAML presets and `--set a.b=value`.

Precedence: dataclass defaults < preset YAML < `--set` overrides. Unknown keys are errors that
suggest the closest key; values are coerced to the field's type (PyYAML reads `5e-4` as a
string, so numbers given as strings are converted here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from classicnets.atomic import atomic_write_text
from classicnets.errors import UserError

DeviceName = str  # "auto" | "cpu" | "cuda" | "cuda:1" | "mps"
# test-time augmentation: flips; AlexNet §4.1's ten crops; 1-pixel shifts and their mirrors,
# their probabilities averaged equally or (translate_flip_weighted) their logits weighted
TestViews = Literal["none", "flip", "10crop", "translate_flip", "translate_flip_weighted"]


Norm = Literal["lrn", "bn", "none"]
LrnAlpha = Literal["paper", "pytorch"]
Activation = Literal["relu", "tanh"]
DropoutPosition = Literal["before_fc", "after_fc"]
InitScheme = Literal["paper", "kaiming", "xavier", "torchvision", "default"]


def _knob(doc: str, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    """Field metadata marking a ModelConfig field as a builder argument (None keeps the
    model's own default); low/high bound a number (high exclusive); `doc` describes it."""
    return {"knob": doc, "low": low, "high": high}


@dataclass(frozen=True)
class ModelConfig:
    """Which registered model to build. The knob fields (see `model_knobs`) are builder
    arguments; `None` keeps the builder's own default (the paper's, or the variant's)."""

    name: str = "alexnet_cifar"
    norm: Norm | None = field(
        default=None,
        metadata=_knob("normalisation: AlexNet §3.3 LRN, BatchNorm after every conv, none"),
    )
    lrn_alpha: LrnAlpha | None = field(
        default=None,
        metadata=_knob(
            "how LRN's alpha=1e-4 is read: paper (§3.3 sum) or pytorch (nn.LocalResponseNorm "
            "divides it by n=5, i.e. 2e-5 in the paper's form)"
        ),
    )
    activation: Activation | None = field(
        default=None, metadata=_knob("ReLU (AlexNet §3.1) or tanh (its Fig. 1 baseline)")
    )
    overlap_pool: bool | None = field(
        default=None, metadata=_knob("3x3/2 overlapping max-pools (AlexNet §3.4) or 2x2/2")
    )
    columns: Literal[1, 2] | None = field(
        default=None,
        metadata=_knob("AlexNet §3.2: 2 = the two GPU columns as grouped conv2/4/5, 1 = one tower"),
    )
    dropout: float | None = field(
        default=None, metadata=_knob("dropout probability on the hidden FC layers", 0.0, 1.0)
    )
    dropout_position: DropoutPosition | None = field(
        default=None,
        metadata=_knob(
            "dropout after each hidden FC layer's ReLU (AlexNet §4.2, VGG) or before the FC layer"
        ),
    )
    pooled_size: int | None = field(
        default=None,
        metadata=_knob(
            "side of the map flattened into the first FC layer (an adaptive average pool makes "
            "it; equal to the last feature map's side it is the identity)",
            1,
        ),
    )
    fc_width: int | None = field(
        default=None,
        metadata=_knob(
            "width of the two hidden FC layers; 0 = one linear layer on the pooled features", 0
        ),
    )
    init: InitScheme | None = field(
        default=None,
        metadata=_knob(
            "weight init: paper (§5 / §3.1 Gaussians), kaiming, xavier, torchvision (what its "
            "class does), default (PyTorch's layer defaults)"
        ),
    )
    stem_bias_epochs: int | None = field(
        default=None,
        metadata=_knob(
            "speedrun_cifar: epochs its whitening stem's bias trains before it is frozen "
            "(arXiv:2404.00498: 3; 0 = it trains throughout)",
            0,
        ),
    )
    # AlexNet §3.2: the two columns on two devices, e.g. [cuda:0, cuda:1]; empty = one device.
    column_devices: list[str] = field(default_factory=list)
    # Start from pretrained weights: torchvision:DEFAULT (or another torchvision tag, for the
    # models laid out as torchvision's) or a state_dict file; a head trained for another class
    # count is replaced (models/pretrained.py). "" = the model's own init.
    weights: str = ""
    freeze: Literal["none", "features"] = "none"  # features: train only the classifier


@dataclass(frozen=True)
class KnobSpec:
    """One model knob: its name, accepted values (None for a number) and bounds, and doc."""

    name: str
    choices: tuple[object, ...] | None
    kind: type
    low: int | float | None
    high: int | float | None
    doc: str


def model_knobs() -> dict[str, KnobSpec]:
    """Every model knob, read from ModelConfig: the one place knobs are declared."""
    hints = typing.get_type_hints(ModelConfig)
    specs = {}
    for spec in fields(ModelConfig):
        if "knob" not in spec.metadata:
            continue
        value_type = next(a for a in typing.get_args(hints[spec.name]) if a is not type(None))
        choices: tuple[object, ...] | None = None
        kind: type = value_type if isinstance(value_type, type) else object
        if typing.get_origin(value_type) is Literal:
            choices = typing.get_args(value_type)
            kind = type(choices[0])
        elif value_type is bool:
            choices = (True, False)
        specs[spec.name] = KnobSpec(
            spec.name,
            choices,
            kind,
            spec.metadata["low"],
            spec.metadata["high"],
            spec.metadata["knob"],
        )
    return specs


def knob_values(cfg: ModelConfig) -> dict[str, Any]:
    """The knobs `cfg` sets, as builder keyword arguments (unset ones keep the defaults)."""
    return {name: getattr(cfg, name) for name in model_knobs() if getattr(cfg, name) is not None}


@dataclass(frozen=True)
class DataConfig:
    """Which data set to read and how to feed it. See classicnets.data for the names."""

    name: str = "digits"
    root: str = field(default_factory=lambda: os.environ.get("CLASSICNETS_DATA", "./data"))
    download: bool = False
    # The training augmentation recipe; "default" picks the data set's usual one.
    augment: Literal[
        "default",
        "none",
        "flip",
        "crop_flip",
        "translate_flip",
        "alexnet",
        "vgg",
        "random_resized_crop",
    ] = "default"
    flip_probability: float = 0.5  # share of training images mirrored by the flipping recipes
    # random: each image mirrored afresh each epoch; alternate (arXiv:2404.00498 §3.6, in-memory
    # loader only): drawn once for epoch 1, then every image's mirror flips each epoch, so a
    # pair of epochs shows every image both ways.
    flip_mode: Literal["random", "alternate"] = "random"
    # Normalise with these per-channel values (on the [0, 1] scale) instead of the data set's
    # own, e.g. to rerun a recipe that computed its statistics differently; empty = the data set's.
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    image_size: int = 0  # 0 = the data set's native size; else resize (e.g. 128, 227)
    pca_lighting: bool = False  # AlexNet §4.1 colour augmentation
    val_fraction: float = 0.1
    limit: int = 0  # at most this many training images (0 = all)
    limit_per_class: int = 0  # at most this many training images per class (0 = all)
    strict: bool = False  # fail on an unreadable image instead of skipping it
    num_workers: int = 2  # only for data sets streamed from disk (ImageNet, folders)
    in_memory: Literal["auto", "yes", "no"] = "auto"
    label_file: str = ""  # e.g. Imagenette's noisy_imagenette.csv
    noisy_labels: str = "noisy_labels_0"  # the column of label_file to train on
    # Score the test split on the images this CSV lists (path column, relative to the data set
    # folder), labelled by its test_label_column; test_label_rows=valid keeps is_valid rows.
    test_label_file: str = ""
    test_label_column: str = "noisy_labels_0"  # Imagenette's CSV: the clean labels
    test_label_rows: Literal["all", "valid"] = "all"
    num_classes: int = 10  # synthetic only
    synthetic_size: int = 32  # synthetic only: image side in pixels
    synthetic_count: int = 256  # synthetic only: images per split
    split_seed: int = 0  # seeds the val carve and the limit subsets (not train.seed: fixed splits)
    # VGG §3.1 scale jittering: training scale S drawn from [scale_min, scale_max] (at a 224
    # crop; scaled with image_size otherwise). scale_min == scale_max is single-scale training.
    scale_min: int = 256
    scale_max: int = 512
    eval_scale: int = 0  # VGG §3.2 test scale Q (0 = (scale_min + scale_max) / 2)


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer. lr is the peak learning rate for one-cycle and warm-up schedules."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5.0e-4
    # AlexNet §5, VGG §3.1 and ResNet §3.4 give one weight decay for the whole net; false puts
    # biases and norm-layer parameters (every 0-d or 1-d parameter) in a group without decay.
    decay_bias_and_norm: bool = True
    body_lr_scale: float = 1.0  # fine-tuning: the lr outside the classifier is lr x this
    # Lookahead as in airbench (train/lookahead.py): every this many steps the weights are
    # reset to slow weights that follow them with a decay ramping up to lookahead_decay ** every
    # (0 = off).
    lookahead_every: int = 0
    lookahead_decay: float = 0.95


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped per optimizer step except `plateau` (per epoch)."""

    name: Literal["constant", "step", "multistep", "plateau", "cosine", "onecycle", "linear"] = (
        "constant"
    )
    step_epochs: int = 30  # step: multiply by gamma every this many epochs
    milestones: list[int] = field(default_factory=list)  # multistep: epochs
    gamma: float = 0.1
    patience: int = 3  # plateau: epochs without val top-1 gain before lr *= gamma
    warmup_epochs: float = 0.0
    warmup_start: float = 0.0  # the warm-up's first lr as a share of the peak (airbench: 0.2)
    pct_start: float = 0.25  # onecycle: share of steps spent rising
    min_lr: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    # The GLOBAL batch: under torchrun each of N ranks takes its slice of every batch, so a
    # run sees the same batches with 1 or N processes (docs/scaling.md).
    batch_size: int = 128
    device: DeviceName = "auto"  # auto picks cuda > mps > cpu
    seed: int = 0
    deterministic: bool = False
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: native bf16 (precision.py)
    channels_last: Literal["auto", "yes", "no"] = "auto"  # auto: on (CUDA and CPU)
    # auto: each fast layer (kernels/) where it measured faster here; torch: torch's modules
    kernels: Literal["auto", "torch"] = "auto"
    compile: bool = False
    # CPU: denormal floats (below 1.2e-38 in fp32) read and written as zero (x86 FTZ/DAZ, Arm
    # FZ); Adam's moments of units that stopped learning sink there and slow its step 13x.
    flush_denormals: bool = True
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    label_smoothing: float = 0.0
    early_stop_patience: int = 0  # epochs without a gain in early_stop_metric; 0 = off
    early_stop_metric: Literal["val_top1", "val_loss"] = "val_top1"  # higher top-1, lower loss
    # Stop after the first epoch whose running training top-1 (%) reaches this; 0 = off. For
    # "epochs to X% training error" measures (AlexNet Fig. 1), whose value the later epochs
    # cannot change.
    stop_at_train_top1: float = 0.0
    # Which weights the final test scores: the best epoch's by val top-1, or the last epoch's.
    test_checkpoint: Literal["best", "last"] = "best"
    tensorboard: bool = False
    checkpoint_every_steps: int = 0  # also save last.pt inside long epochs; 0 = once per epoch
    log_every_steps: int = 20
    tta: TestViews = "none"  # test-time augmentation of the final test
    # A complete run keeps best.safetensors and last.pt; true keeps best.pt and previous.pt too.
    keep_optimizer_state: bool = False
    # Also score the test split after every epoch, as some published runs do: recorded as
    # test-set monitoring (monitor_test_* in metrics.jsonl), never used to pick a checkpoint,
    # stop early or step a schedule; the test split stays what the final test scores.
    monitor_test: bool = False
    progress: bool = True
    # A fixed run folder name under --out. If that folder already holds a checkpoint of the
    # same config, training resumes from it: restarted torchrun workers continue the run.
    run_name: str = ""
    dist_backend: Literal["auto", "nccl", "gloo"] = "auto"  # auto: nccl on CUDA, gloo on CPU
    sync_batchnorm: bool = False  # BatchNorm statistics over the global batch (CUDA ranks only)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


PRESET_DIRS = (Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs")


def preset_names() -> list[str]:
    names = {p.stem for d in PRESET_DIRS if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def resolve_preset(preset: str) -> Path:
    """A preset is a path to a YAML file or the name of one in configs/."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"preset file {preset} does not exist")
        return path
    for directory in PRESET_DIRS:
        candidate = directory / f"{preset}.yaml"
        if candidate.is_file():
            return candidate
    close = difflib.get_close_matches(preset, preset_names(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UserError(f"unknown preset {preset!r}.{hint} Presets: {', '.join(preset_names())}")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())  # one line
        raise UserError(f"malformed YAML in {path}{where}: {problem}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise UserError(f"malformed YAML in {path}: nested too deeply") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of sections (model:, data:, ...)")
    return data


def load_config(preset: str | None = None, overrides: typing.Sequence[str] = ()) -> RunConfig:
    """Build a RunConfig from defaults, an optional preset and `a.b=value` overrides."""
    tree = read_yaml(resolve_preset(preset)) if preset else {}
    return config_from_dict(apply_overrides(tree, overrides))


def apply_overrides(tree: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Set each `a.b=value` (value parsed as YAML) in a nested dict; returns the same dict."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE (e.g. optim.lr=0.01), got {override!r}")
        node = tree
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: {part} is not a section")
        node[leaf] = _parse_scalar(raw)
    return tree


def override_keys(overrides: typing.Sequence[str]) -> list[str]:
    return [override.partition("=")[0].strip() for override in overrides]


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        return raw


def config_from_dict(tree: dict[str, Any]) -> RunConfig:
    """A RunConfig from a nested dict; a wrong key, type or out-of-range number is a UserError."""
    from classicnets.config_ranges import check_config  # the table needs these classes

    config = typing.cast(RunConfig, _build(RunConfig, tree, prefix=""))
    check_config(config)
    return config


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise UserError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            raise UserError(f"unknown config key {prefix}{key}{hint} (known: {', '.join(known)})")
        field_type = hints[key]
        if is_dataclass(field_type):
            kwargs[key] = _build(typing.cast(type, field_type), values[key], f"{prefix}{key}.")
        else:
            kwargs[key] = coerce(value, field_type, f"{prefix}{key}")
    return cls(**kwargs)


def coerce(value: Any, target: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or raise UserError."""
    origin = typing.get_origin(target)
    args = typing.get_args(target)
    if origin in (typing.Union, types.UnionType):
        # A real choice wins over "unset": model.norm=none means "no normalisation layer".
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, key)
            except UserError as error:
                errors.append(str(error))
        is_null = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_null and type(None) in args:
            return None
        raise UserError(errors[-1])
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads yes/no/on/off/true/false as booleans
            words = ("yes", "true", "on") if value else ("no", "false", "off")
            value = next((a for a in args if isinstance(a, str) and a in words), value)
        if value not in args:
            choices = ", ".join(str(a) for a in args)
            raise UserError(f"{key} must be one of {choices}; got {value!r}")
        return value
    if origin is list:
        items = value
        if isinstance(value, str):
            items = [_parse_scalar(v) for v in value.split(",") if v.strip()]
        if not isinstance(items, list | tuple):
            raise UserError(f"{key} must be a list; got {value!r}")
        return [coerce(item, args[0], f"{key}[{i}]") for i, item in enumerate(items)]
    if target is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise UserError(f"{key} must be true or false; got {value!r}")
    if target is int:
        return _coerce_int(value, key)
    if target is float:
        if isinstance(value, bool):
            raise UserError(f"{key} must be a number; got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key} must be a number; got {value!r}") from None
    if target is str:
        if isinstance(value, dict | list):
            raise UserError(f"{key} must be a string; got {value!r}")
        return "" if value is None else str(value)
    raise TypeError(f"config field {key} has an unsupported type {target!r}")


def _coerce_int(value: Any, key: str) -> int:
    """An integer read as one (a seed of 2**53 + 1 stays exact); a float only when it holds an
    integer exactly (5.0, "1e3"), since past 2**53 a float has lost the digits already."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise UserError(f"{key} must be an integer; got {value!r}")
    if abs(number) > 2**53:
        raise UserError(
            f"{key}: {value!r} is too large for a float to hold exactly; write it in digits"
        )
    return int(number)


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    return asdict(config)


def save_config(config: RunConfig, path: Path) -> None:
    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def replace(config: RunConfig, **sections: Any) -> RunConfig:
    """A copy of `config` with whole sections or `section={"field": value}` changes."""
    changes = {}
    for name, value in sections.items():
        current = getattr(config, name)
        changes[name] = dataclasses.replace(current, **value) if isinstance(value, dict) else value
    return dataclasses.replace(config, **changes)
