"""Which weights the final test scores (train.test_checkpoint), what early stopping watches
(train.early_stop_metric) and the stop at a training accuracy (train.stop_at_train_top1);
none reads the test-set monitoring (train.monitor_test)."""

import json
from pathlib import Path

import pytest

from classicnets.config import load_config
from classicnets.run_record import EpochRecord
from classicnets.train.loop import fit
from classicnets.train.state import TrainState


def smoke(*overrides: str):  # type: ignore[no-untyped-def]
    return load_config("smoke", ["train.epochs=3", *overrides])


def records(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("tested", ["best", "last"])
def test_the_final_test_scores_the_checkpoint_asked_for(tmp_path: Path, tested: str) -> None:
    # lr 0.2 makes val top-1 fall after its best epoch, so best and last differ
    config = smoke(
        "train.epochs=4",
        "optim.lr=0.2",
        "train.monitor_test=true",
        f"train.test_checkpoint={tested}",
    )
    run_dir = fit(config, tmp_path)
    rows = records(run_dir)
    best_epoch = json.loads((run_dir / "summary.json").read_text())["best_epoch"]
    assert best_epoch != len(rows), "the recipe must end below its best epoch"
    epoch = len(rows) if tested == "last" else best_epoch
    test = json.loads((run_dir / "eval/test/metrics.json").read_text())
    assert test["top1"] == rows[int(epoch) - 1]["monitor_test_top1"]  # type: ignore[call-overload]


def first_epoch_without_gain(values: list[float], higher_is_better: bool) -> int | None:
    for index in range(1, len(values)):
        best = max(values[:index]) if higher_is_better else min(values[:index])
        if (values[index] <= best) if higher_is_better else (values[index] >= best):
            return index + 1
    return None


def test_early_stopping_watches_the_metric_asked_for(tmp_path: Path) -> None:
    stopped = {}
    for metric in ("val_top1", "val_loss"):
        config = smoke(
            "train.epochs=8", "train.early_stop_patience=1", f"train.early_stop_metric={metric}"
        )
        rows = records(fit(config, tmp_path / metric))
        values = [float(row[metric]) for row in rows]  # type: ignore[arg-type]
        assert first_epoch_without_gain(values, metric == "val_top1") == len(rows)
        stopped[metric] = len(rows)
    assert stopped["val_top1"] != stopped["val_loss"], "the recipe must tell the two apart"


def epoch(number: int, val_top1: float, val_loss: float, test_top1: float) -> EpochRecord:
    return EpochRecord(
        epoch=number,
        lr=0.1,
        train_loss=1.0,
        train_top1=50.0,
        val_loss=val_loss,
        val_top1=val_top1,
        val_top5=90.0,
        epoch_seconds=1.0,
        images_per_second=100.0,
        monitor_test_loss=0.5,
        monitor_test_top1=test_top1,
    )


def test_nothing_that_selects_reads_the_test_monitor() -> None:
    by_loss, by_top1 = TrainState(), TrainState()
    history = [epoch(1, 40.0, 2.0, 10.0), epoch(2, 50.0, 2.5, 99.0), epoch(3, 45.0, 1.5, 5.0)]
    bests = [
        (by_loss.book_epoch(r, "val_loss"), by_top1.book_epoch(r, "val_top1")) for r in history
    ]
    assert bests == [(True, True), (True, True), (False, False)]  # best by val top-1 only
    assert by_loss.best_epoch == by_top1.best_epoch == 2 and by_loss.best_top1 == 50.0
    assert (by_loss.stale_epochs, by_top1.stale_epochs) == (0, 1)  # loss fell in epoch 3
    assert by_loss.best_val_loss == 1.5


def test_a_run_stops_after_the_first_epoch_reaching_the_training_accuracy(tmp_path: Path) -> None:
    full = records(fit(smoke("train.epochs=6"), tmp_path / "full"))
    accuracies = [float(row["train_top1"]) for row in full]  # type: ignore[arg-type]
    threshold = accuracies[2]  # first reached at epoch 3 or earlier
    reached = next(i for i, top1 in enumerate(accuracies, 1) if top1 >= threshold)
    assert reached < len(full), "the recipe must reach the threshold before its last epoch"
    run_dir = fit(smoke("train.epochs=6", f"train.stop_at_train_top1={threshold}"), tmp_path / "s")
    stopped = records(run_dir)
    assert len(stopped) == reached
    assert [row["train_top1"] for row in stopped] == [row["train_top1"] for row in full[:reached]]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and (run_dir / "eval/test/metrics.json").is_file()
