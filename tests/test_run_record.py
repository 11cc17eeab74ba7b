"""The run record: each file's writer and reader agree, readers turn damage into notes, and a
training run writes the model table and the step log."""

import dataclasses
import json
import math
from pathlib import Path

from classicnets.config import load_config
from classicnets.run_record import (
    Environment,
    EpochRecord,
    EvalMetrics,
    LayerRecord,
    ModelRecord,
    StepLog,
    StepRecord,
    Summary,
    read_epochs,
    read_eval_metrics,
    read_model_record,
    read_steps,
    read_summary,
    write_eval_metrics,
    write_summary,
)
from classicnets.train.loop import fit


def test_summary_reads_back_what_was_written(tmp_path: Path) -> None:
    summary = Summary(status="complete", model="alexnet", params=5, test_top1=51.5, classes=["a"])
    write_summary(tmp_path, summary)
    notes: list[str] = []
    assert read_summary(tmp_path, notes) == summary
    assert notes == []


def test_a_string_where_a_number_belongs_is_a_note_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(
        json.dumps({"status": "complete", "test_top1": "51.2%", "params": 12.5, "epochs": True})
    )
    notes: list[str] = []
    summary = read_summary(tmp_path, notes)
    assert summary is not None and summary.status == "complete"
    assert summary.test_top1 is None and summary.params is None and summary.epochs is None
    assert any("test_top1 is '51.2%', not a number" in note for note in notes)
    assert any("params is 12.5, not an integer" in note for note in notes)
    assert any("epochs is True" in note for note in notes)


def test_a_summary_that_is_not_an_object_is_a_note(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text("[1, 2]")
    notes: list[str] = []
    assert read_summary(tmp_path, notes) is None
    assert notes == ["summary.json does not hold a JSON object; ignored"]


def test_a_ragged_confusion_matrix_is_dropped_with_a_note(tmp_path: Path) -> None:
    folder = tmp_path / "eval" / "test"
    metrics = EvalMetrics(
        split="test", top1=50.0, classes=["a", "b"], confusion_matrix=[[1, 0], [1]]
    )
    write_eval_metrics(folder, metrics)
    notes: list[str] = []
    read = read_eval_metrics(folder, notes)
    assert read is not None and read.top1 == 50.0 and read.confusion_matrix == []
    assert any("confusion_matrix is not 2 x 2" in note for note in notes)


def test_a_confusion_matrix_of_strings_is_dropped_with_a_note(tmp_path: Path) -> None:
    folder = tmp_path / "eval" / "test"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"split": "test", "confusion_matrix": "x"}))
    notes: list[str] = []
    read = read_eval_metrics(folder, notes)
    assert read is not None and read.confusion_matrix == [] and read.split == "test"
    assert any("confusion_matrix is 'x'" in note for note in notes)


def test_epoch_lines_without_an_epoch_are_skipped_and_bad_values_are_nan(tmp_path: Path) -> None:
    lines = [
        {"epoch": 1, "lr": 0.1, "train_loss": "high", "train_top1": 50},
        {"lr": 0.1},
        {"epoch": "two"},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    notes: list[str] = []
    (record,) = read_epochs(tmp_path, notes)
    assert isinstance(record, EpochRecord) and record.epoch == 1 and record.train_top1 == 50.0
    assert math.isnan(record.train_loss) and record.val_top1 is None
    assert any("line 2: no 'epoch'; skipped" in note for note in notes)
    assert any("epoch is 'two', not an integer" in note for note in notes)


def test_a_resumed_step_log_drops_the_steps_after_its_checkpoint(tmp_path: Path) -> None:
    log = StepLog(tmp_path, 0)
    for step in (2, 4, 6):
        log.append(StepRecord(step=step, epoch=1, lr=0.1, train_loss=1.0 / step))
    StepLog(tmp_path, 4)
    assert [record.step for record in read_steps(tmp_path, [])] == [2, 4]


def test_training_writes_the_layer_table_and_a_step_line_per_log_interval(
    tmp_path: Path,
) -> None:
    config = load_config("smoke", ["train.epochs=2", "train.log_every_steps=2"])
    run_dir = fit(config, tmp_path)
    notes: list[str] = []
    model = read_model_record(run_dir, notes)
    summary = read_summary(run_dir, notes)
    assert notes == []
    assert model is not None and summary is not None
    assert model.name == "convnet4_cifar" and model.params == summary.params
    assert model.macs == summary.macs and model.macs is not None and model.macs > 0
    assert sum(layer.params for layer in model.layers) == model.params
    assert model.layers[0].name and model.layers[0].output_shape
    steps = read_steps(run_dir, notes)
    per_epoch = len(steps) // 2
    assert per_epoch >= 1 and [s.epoch for s in steps] == [1] * per_epoch + [2] * per_epoch
    assert [s.step for s in steps] == sorted(s.step for s in steps)
    assert all(math.isfinite(s.train_loss) and s.lr > 0 for s in steps)


def test_run_folder_doc_names_every_field_of_every_record() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "run-folder.md").read_text()
    records = (Environment, EpochRecord, StepRecord, Summary, EvalMetrics, ModelRecord)
    missing = [
        f"{record.__name__}.{spec.name}"
        for record in (*records, LayerRecord)
        for spec in dataclasses.fields(record)
        if f'"{spec.name}"' not in doc
    ]
    assert missing == []
    assert all(record.__name__ in doc for record in records)
