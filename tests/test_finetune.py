"""Fine-tuning from a saved torchvision model: the body loads exactly, the head is new for the
class count, frozen weights stay put through training steps, and asking for torchvision's
published weights offline names the file to pass instead."""

import logging
from pathlib import Path

import pytest
import torch
import torchvision

import classicnets
from classicnets.errors import UserError
from classicnets.models import build_model
from classicnets.models.pretrained import load_pretrained, optimizer_groups
from classicnets.train.loop import fit

RESNET18_FILE = "resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1


Saved = tuple[Path, dict[str, torch.Tensor]]


@pytest.fixture(scope="module")
def saved_resnet18(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """A randomly initialised torchvision ResNet-18 (1000 classes), saved as its state_dict."""
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path, state


def finetune_config(weights: Path | str, **fields: object) -> classicnets.RunConfig:
    return classicnets.load_config(
        "smoke", model="resnet18", model__init=None, model__weights=str(weights), **fields
    )


def test_body_loads_exactly_and_the_head_is_new(
    saved_resnet18: Saved, caplog: pytest.LogCaptureFixture
) -> None:
    path, state = saved_resnet18
    model = build_model("resnet18", num_classes=4)
    with caplog.at_level(logging.INFO, logger="classicnets.models.pretrained"):
        new = load_pretrained(model, str(path), "resnet18", num_classes=4)
    assert new == ["fc"]
    assert "new layers for 4 classes: fc (512 -> 4, was 1000)" in caplog.text
    for key, value in model.state_dict().items():
        if key.startswith("fc."):
            assert value.shape[0] == 4 and state[key].shape[0] == 1000
        else:
            assert torch.equal(value, state[key]), key


def test_frozen_features_are_unchanged_after_training_steps(
    saved_resnet18: Saved, tmp_path: Path
) -> None:
    path, state = saved_resnet18
    config = finetune_config(path, freeze="features", lr=0.05)
    run_dir = fit(config, tmp_path)
    trained = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["model"]
    parameters = {name for name, _ in torchvision.models.resnet18().named_parameters()}
    body = sorted(name for name in parameters if not name.startswith("fc."))
    assert len(body) == 60
    for name in body:
        assert torch.equal(trained[name], state[name]), name
    assert trained["fc.weight"].shape == (4, 512)
    # BatchNorm statistics of the body still adapt to the new data (documented).
    assert not torch.equal(trained["bn1.running_mean"], state["bn1.running_mean"])


def test_body_lr_scale_gives_the_body_its_own_lr() -> None:
    model = build_model("resnet18", num_classes=4)
    head, body = optimizer_groups(model, body_lr_scale=0.1, lr=0.02)
    assert head["lr"] == 0.02 and body["lr"] == pytest.approx(0.002)
    assert {id(p) for p in head["params"]} == {id(model.fc.weight), id(model.fc.bias)}
    assert len(body["params"]) == len(list(model.parameters())) - 2


def test_mismatch_outside_the_head_is_one_line(saved_resnet18: Saved, tmp_path: Path) -> None:
    path, state = saved_resnet18
    wrong = dict(state, **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match=r"shape mismatch at conv1\.weight"):
        load_pretrained(build_model("resnet18", 4), str(tmp_path / "wrong.pth"), "resnet18", 4)
    with pytest.raises(UserError, match="missing keys"):
        vgg = build_model("vgg11", 4)
        load_pretrained(vgg, str(path), "vgg11", 4)


def test_torchvision_weights_come_from_the_hub_cache_or_a_named_file(
    saved_resnet18: Saved,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, state = saved_resnet18
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = build_model("resnet18", num_classes=4)
    with pytest.raises(UserError, match=f"needs {RESNET18_FILE}.*pass model.weights=PATH"):
        load_pretrained(model, "torchvision:DEFAULT", "resnet18", 4)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / RESNET18_FILE).write_bytes(path.read_bytes())
    assert load_pretrained(model, "torchvision:DEFAULT", "resnet18", 4) == ["fc"]
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    with pytest.raises(UserError, match="no torchvision counterpart"):
        load_pretrained(build_model("alexnet", 4), "torchvision:DEFAULT", "alexnet", 4)


def test_finetune_preset_names_its_net_and_input_size() -> None:
    config = classicnets.load_config("finetune_cifar10")
    assert config.model.name == "alexnet_owt" and config.model.weights == "torchvision:DEFAULT"
    assert config.data.image_size == 224 and config.optim.body_lr_scale == 0.1
