"""Small random configs of valid types, driven past load_config: the model, the loaders, the
optimizer and the schedule are built as fit() builds them, and one training step runs. Each
example must end in a one-line UserError or a step with a loss: never a traceback.

Hypothesis runs derandomized with few examples (seconds, the same cases on every machine).
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classicnets.config import load_config
from classicnets.errors import UserError
from classicnets.train.losses import classification_loss
from classicnets.train.setup import build_run_parts

FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Small 32x32 nets (the big-FC AlexNet and VGG variants cost seconds per build).
MODELS = ["convnet4_cifar", "resnet18_cifar", "speedrun_cifar", "vgg11_bn_cifar"]

overrides = st.fixed_dictionaries(
    {
        "model.name": st.sampled_from(MODELS),
        "model.dropout": st.one_of(st.none(), st.floats(0.0, 0.9)),
        "data.num_classes": st.integers(2, 10),
        "data.synthetic_count": st.integers(8, 40),
        "data.val_fraction": st.floats(0.0, 0.5),
        "data.augment": st.sampled_from(["default", "none", "crop_flip", "flip"]),
        "data.in_memory": st.sampled_from(["auto", "yes", "no"]),
        "train.batch_size": st.integers(1, 16),
        "train.epochs": st.integers(1, 3),
        "train.label_smoothing": st.floats(0.0, 0.5),
        "train.channels_last": st.sampled_from(["auto", "yes", "no"]),
        "train.kernels": st.sampled_from(["auto", "torch"]),
        "optim.name": st.sampled_from(["sgd", "adam", "adamw"]),
        "optim.lr": st.floats(1e-5, 1.0),
        "optim.momentum": st.floats(0.0, 0.99),
        "optim.weight_decay": st.floats(0.0, 0.01),
        "schedule.name": st.sampled_from(["constant", "step", "cosine", "onecycle", "linear"]),
        "schedule.warmup_epochs": st.floats(0.0, 2.0),
    }
)


@FUZZ
@given(values=overrides)
def test_random_small_configs_build_a_model_and_loaders_and_train_a_step(values):
    items = [f"{key}={'null' if value is None else value}" for key, value in values.items()]
    try:
        config = load_config("smoke", [*items, "model.init=null", "data.num_workers=0"])
        parts = build_run_parts(config, None)
    except UserError as error:
        assert "\n" not in str(error) and str(error)
        return
    model = parts.model.wrapped
    images, targets = next(iter(parts.data.train_loader.epoch(0)))
    assert images.shape[1:] == (3, 32, 32) and len(targets) == len(images)
    assert int(targets.max()) < values["data.num_classes"]
    model.train()
    logits = model(images)
    loss = classification_loss(logits, targets, config.train.label_smoothing)
    loss.backward()
    parts.optimization.optimizer.step()
    assert torch.is_tensor(loss) and (math.isfinite(loss.item()) or values["optim.lr"] > 0.1)


@pytest.mark.parametrize("name", MODELS)
def test_every_fuzzed_model_builds_with_the_smoke_config(name):
    parts = build_run_parts(load_config("smoke", [f"model.name={name}", "model.init=null"]), None)
    assert sum(p.numel() for p in parts.model.module.parameters()) > 0
