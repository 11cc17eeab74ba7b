import json
import os
from pathlib import Path

import pytest
import torch

from classicnets import allocator
from classicnets.cli import main
from classicnets.config import load_config
from classicnets.errors import UserError
from classicnets.precision import flushes_denormals
from classicnets.train import loop
from classicnets.train.loop import fit

TIMING = ("epoch_seconds", "images_per_second")


def smoke(*overrides: str):  # type: ignore[no-untyped-def]
    return load_config("smoke", ["train.epochs=3", "train.log_every_steps=1", *overrides])


def rows(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def weights(run_dir: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / name, weights_only=False)
    return dict(state["model"])


def test_cli_smoke_run_writes_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--preset", "smoke", "--out", str(tmp_path)])
    assert code == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for name in (
        "config.yaml",
        "env.json",
        "metrics.jsonl",
        "metrics.csv",
        "summary.json",
        "checkpoints/last.pt",
        "checkpoints/best.safetensors",
        "eval/test/metrics.json",
        "eval/test/predictions.csv",
    ):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs"] == 1
    assert summary["model"] == "convnet4_cifar" and summary["params"] > 0
    for key in ("best_top1", "best_epoch", "last_top1", "test_top1", "test_top5", "wall_seconds"):
        assert summary[key] is not None, key
    env = json.loads((run_dir / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert env["malloc"] == allocator.malloc_setting() and env["thp_mem_alloc"] is not None
    checkpoint = torch.load(run_dir / "checkpoints/last.pt", weights_only=False)
    assert checkpoint["config"]["model"]["name"] == "convnet4_cifar"
    out = capsys.readouterr().out
    assert f"run folder: {run_dir}" in out and "test top-1:" in out


def test_same_seed_gives_same_first_loss(tmp_path: Path) -> None:
    config = smoke("train.epochs=1")
    first = rows(fit(config, tmp_path / "a"))[0]["train_loss"]
    second = rows(fit(config, tmp_path / "b"))[0]["train_loss"]
    assert first == second


@pytest.mark.parametrize("stop_step", [4, 5])  # 4 batches per epoch: an epoch edge, mid-epoch
def test_resume_is_bit_exact(tmp_path: Path, stop_step: int) -> None:
    config = smoke("schedule.name=cosine")
    whole = fit(config, tmp_path / "whole")
    broken = fit(config, tmp_path / "broken", stop_after_steps=stop_step)
    assert json.loads((broken / "summary.json").read_text())["status"] == "interrupted"
    resumed = fit(config, resume=broken)
    assert resumed == broken
    assert rows(resumed) == rows(whole)
    expected, got = weights(whole), weights(resumed)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert json.loads((resumed / "summary.json").read_text())["status"] == "complete"


def test_corrupt_last_checkpoint_falls_back_to_previous(tmp_path: Path) -> None:
    config = smoke()
    run_dir = fit(config, tmp_path, stop_after_steps=9)  # epochs 1-2 done, saved twice
    last = run_dir / "checkpoints/last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # a kill mid-write of a non-atomic save
    resumed = fit(config, resume=run_dir)
    assert [r["epoch"] for r in rows(resumed)] == [1, 2, 3]


def test_diverging_loss_stops_with_a_clear_message(tmp_path: Path) -> None:
    config = smoke("optim.lr=1e12", "optim.momentum=0")
    with pytest.raises(UserError, match="loss became"):
        fit(config, tmp_path)


def test_resume_refuses_to_change_the_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = fit(smoke(), tmp_path, stop_after_steps=2)
    code = main(["train", "--resume", str(run_dir), "--set", "optim.lr=0.5"])
    assert code == 2
    assert "optim.lr cannot change when resuming" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "optim.lrr=0.1"], "did you mean optim.lr"),
        (["--set", "train.epochs=two"], "train.epochs must be an integer"),
        (["--set", "model.name=alexnett"], "Did you mean alexnet"),
        (["--set", "data.name=cifar10", "--set", "data.root=/nonexistent"], "/nonexistent"),
    ],
)
def test_bad_config_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["train", "--preset", "smoke", "--out", str(tmp_path / "runs"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    assert main(["train", "--preset", "smoke", "--out", str(locked)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_unwritable_out_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["train", "--preset", "smoke", "--out", str(blocker / "runs")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


def test_resume_without_checkpoint_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text("model: {name: convnet4_cifar}\n")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_evaluate_writes_metrics_and_rejects_other_class_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = fit(smoke("train.epochs=1"), tmp_path)
    assert main(["evaluate", str(run_dir), "--tta", "flip"]) == 0
    metrics = json.loads((run_dir / "eval/test-flip/metrics.json").read_text())
    assert metrics["count"] == sum(metrics["per_class_count"])
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["count"]
    assert metrics["correct"] + metrics["incorrect"] == metrics["count"]
    lines = (run_dir / "eval/test-flip/predictions.csv").read_text().splitlines()
    assert lines[0] == "sample,target,predicted,top5_classes,top5_probs"
    assert len(lines) == metrics["count"] + 1
    assert main(["evaluate", str(run_dir), "--tta", "translate_flip_weighted"]) == 0
    weighted = json.loads((run_dir / "eval/test-translate_flip_weighted/metrics.json").read_text())
    assert weighted["count"] == metrics["count"] and weighted["tta"] == "translate_flip_weighted"
    capsys.readouterr()
    code = main(["evaluate", str(run_dir), "--set", "data.num_classes=7"])
    assert code == 2 and "classes" in capsys.readouterr().err


def test_evaluate_rejects_a_truncated_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["evaluate", str(bad)]) == 2
    assert "truncated or not a checkpoint" in capsys.readouterr().err


def test_predict_prints_top_classes_and_rejects_non_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    run_dir = fit(smoke("train.epochs=1"), tmp_path)
    classes = json.loads((run_dir / "summary.json").read_text())["classes"]
    image = tmp_path / "image.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(image)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ")
    ranked = [item.rsplit(" ", 1) for item in line.split(": ", 1)[1].split(", ")]
    assert len(ranked) == min(5, len(classes))
    assert {name for name, _ in ranked} <= set(classes)
    assert sum(float(p) for _, p in ranked) == pytest.approx(1.0, abs=0.01)
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    assert main(["predict", str(run_dir), str(not_image)]) == 2
    assert "cannot read image" in capsys.readouterr().err


def test_without_a_terminal_progress_is_a_line_every_tenth_of_an_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest's stderr is not a terminal, so tqdm draws nothing, as under nohup.
    shown = ["train.progress=true", "data.synthetic_count=240", "train.batch_size=9"]
    with caplog.at_level("INFO", logger="classicnets.train.loop"):
        fit(smoke("train.epochs=1", *shown), tmp_path / "shown")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1 step")]
    positions = [line.split()[3].split("/") for line in lines]
    total = 20  # 180 training images (val_fraction 0.25) in batches of 9
    assert {int(of) for _, of in positions} == {total}
    assert [int(step) for step, _ in positions] == list(range(2, total, 2))
    assert all("loss=" in line and "img_s=" in line for line in lines)

    caplog.clear()
    with caplog.at_level("INFO", logger="classicnets.train.loop"):
        fit(smoke("train.epochs=1", "train.progress=false"), tmp_path / "quiet")
    assert not [r for r in caplog.records if r.getMessage().startswith("epoch 1 step")]


def test_training_flushes_denormals_to_zero_unless_told_not_to(tmp_path, monkeypatch):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero mode")
    seen = []
    train_one_epoch = loop.train_one_epoch

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(flushes_denormals())
        return train_one_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", spy)
    assert not flushes_denormals()  # the CPU's default
    fit(smoke("train.epochs=1", "train.flush_denormals=false"), tmp_path / "kept")
    fit(smoke("train.epochs=1"), tmp_path / "flushed")
    assert seen == [False, True]
    assert not flushes_denormals()  # each run left the mode as it found it
