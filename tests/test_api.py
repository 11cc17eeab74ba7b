"""The Python API (classicnets.train -> Run, load_run, compare) and the CLI over it."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import classicnets
from classicnets.cli import build_parser, main
from classicnets.config import config_to_dict, preset_names
from classicnets.errors import UserError


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[classicnets.Run]:
    """Two one-epoch smoke runs that differ in their seed."""
    out = tmp_path_factory.mktemp("runs")
    return [classicnets.train("smoke", out=out, seed=seed) for seed in (0, 1)]


def test_keyword_overrides_name_fields_sections_and_section_names() -> None:
    config = classicnets.load_config(
        "smoke", ["optim.momentum=0.5"], epochs=3, lr=0.1, data__limit=8, model="vgg11_cifar"
    )
    assert config.train.epochs == 3 and config.optim.lr == 0.1
    assert config.optim.momentum == 0.5 and config.data.limit == 8
    assert config.model.name == "vgg11_cifar" and config.model.init == "kaiming"  # from smoke
    assert classicnets.load_config(config, epochs=5).train.epochs == 5
    with pytest.raises(UserError, match="model__name, data__name"):
        classicnets.load_config(name="x")
    with pytest.raises(UserError, match="did you mean epochs"):
        classicnets.load_config(epoch=3)
    with pytest.raises(UserError, match="must be an integer"):
        classicnets.load_config(epochs="many")


def test_train_returns_a_run_that_reads_its_folder(runs: list[classicnets.Run]) -> None:
    run = runs[0]
    assert run.folder.is_dir() and run.config.train.seed == 0
    assert [row["epoch"] for row in run.history] == [1]
    assert run.summary["status"] == "complete" and run.summary["test_top1"] is not None
    assert isinstance(run.model, torch.nn.Module) and not run.model.training
    assert "complete" in run._repr_html_()
    assert classicnets.load_run(run.folder).summary == run.summary
    with pytest.raises(UserError, match="not a run folder"):
        classicnets.load_run(run.folder / "checkpoints")


def test_report_shows_inline_and_is_the_cli_report(runs: list[classicnets.Run]) -> None:
    run = runs[0]
    report = run.report()
    assert report.path == run.folder / "report.html"
    from_api = report.path.read_text()
    assert main(["report", str(run.folder)]) == 0
    assert report.path.read_text() == from_api
    inline = report._repr_html_()
    assert inline.startswith("<iframe srcdoc=") and "Learning curves" in inline
    assert "<html" not in inline  # the page is escaped into the frame, not pasted in


def test_evaluate_scores_the_best_weights_as_training_did(runs: list[classicnets.Run]) -> None:
    run = runs[0]
    metrics = run.evaluate("test")
    assert metrics["top1"] == pytest.approx(run.summary["test_top1"])
    assert len(metrics["confusion_matrix"]) == run.summary["num_classes"]
    assert run.plot_confusion().axes


def test_predict_takes_files_pil_images_and_arrays(
    runs: list[classicnets.Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runs[0]
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(pixels).save(path)
    from_file, from_pil, from_array = run.predict([path, Image.fromarray(pixels), pixels])
    assert from_file.top == from_pil.top == from_array.top
    assert len(from_file.top) == 4  # the smoke set has 4 classes
    assert sum(p for _, p in from_file.top) == pytest.approx(1.0, abs=1e-5)
    assert from_file.label in run.summary["classes"]
    assert main(["predict", str(run.folder), str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(from_file)
    with pytest.raises(UserError, match="cannot read image"):
        run.predict(tmp_path / "missing.png")


def test_compare_writes_the_comparison_and_shows_inline(
    runs: list[classicnets.Run], tmp_path: Path
) -> None:
    comparison = classicnets.compare(runs, out=tmp_path / "compare")
    assert comparison.path == tmp_path / "compare" / "comparison.html"
    text = comparison.path.read_text()
    assert "seed 0" in text and "seed 1" in text  # default labels tell the runs apart
    assert comparison._repr_html_().startswith("<iframe")
    with pytest.raises(UserError, match="1 labels for 2 runs"):
        classicnets.compare(runs, ["only one"])


def test_train_the_function_survives_importing_the_train_package() -> None:
    code = (
        "import classicnets.train.loop, classicnets.train.setup, classicnets; "
        "print(callable(classicnets.train), classicnets.train.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["True", "classicnets.api"], done.stderr


def _modules_loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (its own output ignored)."""
    probe = f"{code}\nimport sys\nprint('\\n' + ' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.splitlines()[-1].split())


def test_import_and_help_load_only_what_they_use() -> None:
    heavy = {"torch", "torchvision", "matplotlib", "classicnets.api"}
    assert not heavy & _modules_loaded_by("import classicnets")
    help_code = (
        "from classicnets.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert not heavy & _modules_loaded_by(help_code)
    models = _modules_loaded_by("import classicnets.models")
    assert "torch" in models and not {"torchvision", "matplotlib", "classicnets.api"} & models
    # torchvision arrives with the first net built from it, and only then.
    alexnet = _modules_loaded_by("from classicnets.cli import main\nmain(['summary', 'alexnet'])")
    assert "torchvision" not in alexnet
    resnet = _modules_loaded_by("import classicnets.models as m\nm.build_model('resnet18')")
    assert "torchvision" in resnet
    # The API still arrives whole on first use, under the same names.
    api = _modules_loaded_by(
        "from classicnets import Run, train; assert Run.__module__ == 'classicnets.api'"
    )
    assert "classicnets.api" in api


def test_train_cannot_be_replaced_by_a_value() -> None:
    with pytest.raises(AttributeError, match="API function"):
        classicnets.train = 3  # type: ignore[assignment]
    assert callable(classicnets.train)


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"classicnets {classicnets.__version__}"


def test_print_config_resolves_overrides_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    argv = ["train", "train.epochs=1", "--preset", "default", "--out", str(out)]
    code = main([*argv, "--print-config", "optim.lr=0.5", "--set", "train.seed=3"])
    assert code == 0 and not out.exists()
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = classicnets.load_config("default", epochs=1, lr=0.5, seed=3)
    assert printed == config_to_dict(expected)


def test_unknown_trailing_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "--preset", "smoke", "--print-config", "--bogus"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def _arguments(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _arguments(sub, f"{path} {name}")
        else:
            found.append((path, action))
    return found


def test_every_argument_of_every_command_has_help() -> None:
    missing = [
        f"{path}: {action.dest}"
        for path, action in _arguments(build_parser(), "classicnets")
        if not action.help
    ]
    assert missing == []


def test_train_help_lists_the_presets() -> None:
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    text = subparsers.choices["train"].format_help()
    for name in preset_names():
        assert name in text
    assert "KEY=VALUE" in text


def test_export_torch_program_matches_the_eager_model(
    runs: list[classicnets.Run], tmp_path: Path
) -> None:
    from classicnets.export import example_input, load_exported

    run = runs[0]
    path = tmp_path / "model.pt2"
    assert main(["export", str(run.folder), "--format", "torch.export", "--out", str(path)]) == 0
    x = example_input(run.trained)
    with torch.no_grad():
        torch.testing.assert_close(load_exported(path)(x), run.model(x))
    with pytest.raises(UserError, match="refusing to overwrite"):
        run.export("torch.export", path)


def test_export_onnx_matches_the_eager_model(runs: list[classicnets.Run], tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    from classicnets.export import example_input

    run = runs[0]
    path = run.export("onnx", tmp_path / "model.onnx")
    session = ReferenceEvaluator(onnx.load(path))
    x = example_input(run.trained)
    (outputs,) = session.run(None, {session.input_names[0]: x.numpy()})
    with torch.no_grad():
        expected = run.model(x).numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-5)


def test_summary_json_matches_run_summary(runs: list[classicnets.Run]) -> None:
    run = runs[1]
    assert json.loads((run.folder / "summary.json").read_text()) == run.summary
