"""`classicnets models` and `classicnets summary`: output and one-line user errors (exit 2)."""

import pytest

from classicnets.cli import main
from classicnets.models import list_models


def test_models_lists_every_model_with_input_params_and_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in list_models():
        assert name in lines
    assert "3x227x227" in lines["alexnet"] and "60,965,224" in lines["alexnet"]
    assert "Krizhevsky et al. 2012 §3, Fig. 2" in lines["alexnet"]
    assert lines["alexnet_cifar"].split()[1:4] == ["3x32x32", "36,925,322", "10"]
    assert lines["vgg16"].split()[1:4] == ["3x224x224", "138,357,544", "1000"]
    assert lines["vgg13_128"].split()[1:4] == ["3x128x128", "59,785,802", "10"]
    assert "each model's usual class count" in out


def test_summary_prints_table_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "96x55x55" in out
    assert "params: 60,965,224" in out
    assert "MACs (multiply-accumulates): 724,406,816" in out
    assert "FLOPs = 2 x MACs" in out and "GFLOPs" in out


def test_summary_takes_input_and_num_classes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "alexnet_cifar", "--input", "3x64x64", "--num-classes", "100"]) == 0
    out = capsys.readouterr().out
    assert "input: 3x64x64" in out
    last_fc = next(line for line in out.splitlines() if line.startswith("classifier.6"))
    assert last_fc.split()[2] == "100"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "alexnett"], "unknown model 'alexnett'. Did you mean alexnet"),
        (["summary", "alexnet", "--input", "3x227"], "--input must be CxHxW"),
        (["summary", "alexnet", "--input", "227x227x3"], "--input must have 3 channels"),
        (["summary", "alexnet", "--num-classes", "0"], "num_classes must be a whole number >= 1"),
        (["summary", "alexnet", "--input", "3x64x64"], "alexnet needs images of at least 67x67"),
    ],
)
def test_summary_bad_input_is_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert message in captured.err
