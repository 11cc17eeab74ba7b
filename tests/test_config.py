from pathlib import Path

import pytest

from classicnets.config import (
    RunConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    read_yaml,
    save_config,
)
from classicnets.errors import UserError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_precedence_defaults_then_preset_then_set(tmp_path: Path) -> None:
    preset = tmp_path / "p.yaml"
    preset.write_text("optim: {lr: 0.5, name: adam}\ntrain: {epochs: 3}\n")
    config = load_config(str(preset), ["optim.lr=0.25"])
    assert config.optim.lr == 0.25  # --set beats the preset
    assert config.optim.name == "adam"  # the preset beats the default
    assert config.train.epochs == 3
    assert config.train.batch_size == RunConfig().train.batch_size  # untouched default


def test_yaml_exponent_without_dot_is_coerced_to_float(tmp_path: Path) -> None:
    preset = tmp_path / "p.yaml"
    preset.write_text("optim: {weight_decay: 5e-4}\n")  # PyYAML reads this as a string
    assert load_config(str(preset)).optim.weight_decay == pytest.approx(5e-4)


def test_none_is_a_choice_where_the_field_offers_it() -> None:
    config = load_config(None, ["model.norm=none", "model.dropout=none", "model.init=null"])
    assert config.model.norm == "none"  # "no normalisation", not "keep the default"
    assert config.model.dropout is None and config.model.init is None


def test_set_values_are_coerced_to_field_types() -> None:
    config = load_config(
        None,
        [
            "train.epochs=7",
            "train.deterministic=yes",
            "schedule.milestones=3,6",
            "model.norm=bn",
            "model.dropout=none",
        ],
    )
    assert config.train.epochs == 7 and config.train.deterministic is True
    assert config.schedule.milestones == [3, 6]
    assert config.model.norm == "bn" and config.model.dropout is None
    assert load_config(None, ["model.norm=null"]).model.norm is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=0.1", "did you mean optim.lr"),
        ("trian.epochs=3", "did you mean train"),
        ("train.epochs=2.5", "train.epochs must be an integer"),
        ("train.epochs=many", "train.epochs must be an integer"),
        ("optim.name=rmsprop", "optim.name must be one of sgd, adam, adamw"),
        ("train.deterministic=maybe", "true or false"),
        ("optim.lr", "KEY=VALUE"),
    ],
)
def test_bad_overrides_are_one_line_user_errors(override: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        load_config(None, [override])
    assert "\n" not in str(caught.value)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: [alexnet\n")
    with pytest.raises(UserError, match=r"malformed YAML in .*bad.yaml line"):
        load_config(str(bad))


def test_unknown_preset_suggests_closest() -> None:
    with pytest.raises(UserError, match="Did you mean alexnet_cifar10"):
        load_config("alexnet_cifar1")


def test_save_then_load_gives_equal_config(tmp_path: Path) -> None:
    config = load_config(None, ["optim.lr=0.003", "schedule.milestones=[1, 2]", "model.norm=lrn"])
    save_config(config, tmp_path / "config.yaml")
    assert config_from_dict(read_yaml(tmp_path / "config.yaml")) == config
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize("preset", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_preset_loads(preset: str) -> None:
    load_config(preset)


def test_data_root_default_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSICNETS_DATA", "/somewhere/data")
    assert load_config(None).data.root == "/somewhere/data"
    assert load_config(None, ["data.root=/else"]).data.root == "/else"
