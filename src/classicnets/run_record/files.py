"""The one writer and the one reader of each JSON file in a run folder.

Writers replace a file atomically (or append one fsynced line), so a crash never leaves half
a file. Readers take a `notes` list: whatever is missing, unreadable or of the wrong type is
described there (reports show the notes) and read as far as it goes, never raised.
"""

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from classicnets.atomic import atomic_write_text
from classicnets.errors import UserError
from classicnets.run_record.fields import read_record, record_dict
from classicnets.run_record.records import (
    Environment,
    EpochRecord,
    ModelRecord,
    StepRecord,
    Summary,
)

R = TypeVar("R")

CONFIG_FILE = "config.yaml"  # written and read by classicnets.config (save_config, read_yaml)
ENV_FILE = "env.json"
EPOCHS_FILE = "metrics.jsonl"
EPOCHS_CSV_FILE = "metrics.csv"
STEPS_FILE = "steps.jsonl"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.json"
CHECKPOINTS_DIR = "checkpoints"  # written and read by classicnets.train.checkpoint


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def read_json_object(path: Path, notes: list[str]) -> dict[str, Any] | None:
    """The JSON object in `path`; None (with a note unless the file is absent) otherwise."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        notes.append(f"{path.name} is unreadable ({error}); ignored")
        return None
    if not isinstance(data, dict):
        notes.append(f"{path.name} does not hold a JSON object; ignored")
        return None
    return data


def _read_file_record(cls: type[R], path: Path, notes: list[str]) -> R | None:
    data = read_json_object(path, notes)
    if data is None:
        if not path.is_file():
            notes.append(f"no {path.name}")
        return None
    return read_record(cls, data, path.name, notes)


def write_summary(run_dir: Path, summary: Summary) -> None:
    write_json(run_dir / SUMMARY_FILE, record_dict(summary))


def read_summary(run_dir: Path, notes: list[str]) -> Summary | None:
    return _read_file_record(Summary, run_dir / SUMMARY_FILE, notes)


def write_environment(run_dir: Path, environment: Environment) -> None:
    write_json(run_dir / ENV_FILE, record_dict(environment))


def read_environment(run_dir: Path, notes: list[str]) -> Environment | None:
    return _read_file_record(Environment, run_dir / ENV_FILE, notes)


def write_model_record(run_dir: Path, model: ModelRecord) -> None:
    write_json(run_dir / MODEL_FILE, record_dict(model))


def read_model_record(run_dir: Path, notes: list[str]) -> ModelRecord | None:
    return _read_file_record(ModelRecord, run_dir / MODEL_FILE, notes)


class EpochLog:
    """The writer of metrics.jsonl (one line per epoch, appended) and metrics.csv (rewritten)."""

    def __init__(self, run_dir: Path, history: Sequence[EpochRecord] = ()) -> None:
        self.jsonl = run_dir / EPOCHS_FILE
        self.csv = run_dir / EPOCHS_CSV_FILE
        self.rows = [record.to_dict() for record in history]
        # On resume the checkpoint's history is the truth: rewrite both files from it, which
        # also drops a line written after the checkpoint or truncated by a kill.
        atomic_write_text(self.jsonl, "".join(json.dumps(row) + "\n" for row in self.rows))
        self._write_csv()

    def append(self, record: EpochRecord) -> None:
        row = record.to_dict()
        self.rows.append(row)
        try:
            with self.jsonl.open("a") as file:
                file.write(json.dumps(row) + "\n")
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            raise UserError(f"cannot write {self.jsonl}: {error.strerror}") from None
        self._write_csv()

    def _write_csv(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EpochRecord.field_names())
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv, buffer.getvalue())


def read_epochs(run_dir: Path, notes: list[str]) -> list[EpochRecord]:
    """metrics.jsonl's records sorted by epoch. Unreadable lines are skipped with a note; when
    an epoch appears twice (a resumed run redid it) the later line wins."""
    path = run_dir / EPOCHS_FILE
    if not path.is_file():
        notes.append(f"no {EPOCHS_FILE} (no epoch has finished)")
        return []
    by_epoch: dict[int, EpochRecord] = {}
    for record in _read_lines(EpochRecord, path, notes):
        if record.epoch in by_epoch:
            notes.append(f"{EPOCHS_FILE}: epoch {record.epoch} appears twice; kept the later line")
        by_epoch[record.epoch] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


class StepLog:
    """The writer of steps.jsonl: the loss and learning rate at each log step."""

    def __init__(self, run_dir: Path, global_step: int) -> None:
        self.path = run_dir / STEPS_FILE
        if self.path.is_file():  # a resumed run redoes the steps after its checkpoint
            kept = [record for record in read_steps(run_dir, []) if record.step <= global_step]
            text = "".join(json.dumps(record_dict(record)) + "\n" for record in kept)
            atomic_write_text(self.path, text)

    def append(self, record: StepRecord) -> None:
        """Append a line, without the fsync that metrics.jsonl's lines get: a crash may lose
        the last few step lines, which the next log steps of a resume write again."""
        try:
            with self.path.open("a") as file:
                file.write(json.dumps(record_dict(record)) + "\n")
        except OSError as error:
            raise UserError(f"cannot write {self.path}: {error.strerror}") from None


def read_steps(run_dir: Path, notes: list[str]) -> list[StepRecord]:
    """steps.jsonl's records in file order; none (without a note) for runs made before it."""
    path = run_dir / STEPS_FILE
    return list(_read_lines(StepRecord, path, notes)) if path.is_file() else []


def _read_lines(cls: type[R], path: Path, notes: list[str]) -> list[R]:
    lines = path.read_text(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = "last line" if number == len(lines) else f"line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            notes.append(
                f"{path.name}: skipped the {where}, which is not valid JSON "
                "(truncated while being written?)"
            )
            continue
        record = read_record(cls, data, f"{path.name} {where}", notes)
        if record is not None:
            records.append(record)
    return records
