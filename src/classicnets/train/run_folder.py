"""The run folder of a training run: creating it, restarting in it, and what rank 0 writes
there while training (through classicnets.run_record; docs/run-folder.md has the layout).
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from classicnets.config import RunConfig, TrainConfig, config_from_dict, read_yaml, save_config
from classicnets.errors import UserError
from classicnets.run_record import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EpochLog,
    EpochRecord,
    StepLog,
    StepRecord,
    Summary,
    collect_environment,
    read_summary,
    write_environment,
    write_model_record,
)
from classicnets.train.run_lock import clear_unstarted_run
from classicnets.train.setup import RunParts
from classicnets.train.state import TrainState

log = logging.getLogger(__name__)


def create_run_dir(
    out_root: Path, model_name: str, dataset_name: str, run_name: str | None = None
) -> Path:
    """A new, unique run folder under `out_root`; an existing folder is never reused.

    With `run_name`, the folder is exactly out_root/run_name and must not exist yet.
    """
    check_writable(out_root)
    if run_name is not None:
        run_dir = out_root / run_name
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise UserError(f"{run_dir} already exists; refusing to overwrite it") from None
        return run_dir
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{model_name}-{dataset_name}"
    for attempt in range(1, 1000):
        run_dir = out_root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            continue
    raise UserError(f"cannot find a free run folder name under {out_root}")


def check_writable(folder: Path) -> None:
    """Fail before any training starts if `folder` cannot hold a run."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".classicnets-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"cannot write to {folder}: {error.strerror} (choose another --out)"
        ) from None


def tensorboard_writer(cfg: TrainConfig, run_dir: Path) -> Any:
    """A SummaryWriter on run_dir/tensorboard when train.tensorboard is on, else None."""
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            "train.tensorboard=true needs TensorBoard: pip install 'classicnets[tensorboard]'"
        ) from None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


# EpochRecord field -> TensorBoard tag: a panel per quantity, train beside val.
TENSORBOARD_EPOCH_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_top1": "top1/train",
    "val_top1": "top1/val",
    "val_top5": "top5/val",
    "lr": "lr/epoch_first_step",
    "epoch_seconds": "speed/epoch_seconds",
    "images_per_second": "speed/images_per_second",
}


def log_tensorboard(writer: Any, record: EpochRecord) -> None:
    """An epoch's scalars, at x = the epoch."""
    for name, tag in TENSORBOARD_EPOCH_TAGS.items():
        value = getattr(record, name)
        if value is not None:
            writer.add_scalar(tag, value, record.epoch)


def log_tensorboard_step(writer: Any, record: StepRecord) -> None:
    """A log step's loss and lr, at x = the optimizer step."""
    writer.add_scalar("loss/train_step", record.train_loss, record.step)
    writer.add_scalar("lr/step", record.lr, record.step)


def load_run_config(run_dir: Path) -> RunConfig:
    """The resolved config saved in a run folder."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.yaml)")
    return config_from_dict(read_yaml(path))


def start_run_folder(
    config: RunConfig,
    parts: RunParts,
    out_root: Path,
    command: Sequence[str],
    run_name: str | None = None,
) -> Path:
    """A new run folder holding config.yaml, env.json and model.json."""
    run_dir = create_run_dir(out_root, config.model.name, config.data.name, run_name)
    save_config(config, run_dir / CONFIG_FILE)
    precision = parts.precision
    write_environment(run_dir, collect_environment(precision.device, precision.name, command))
    write_model_record(run_dir, parts.model.record)
    log.info("run folder: %s", run_dir)
    return run_dir


def restart_point(config: RunConfig, out_root: Path) -> tuple[str, Path | None]:
    """For a fixed train.run_name: ("resume", folder) if it holds a checkpoint of this config,
    ("complete", folder) if that run finished, else ("new", None) after clearing a folder
    that a start killed before its first checkpoint left behind."""
    run_dir = out_root / config.train.run_name
    if not run_dir.exists():
        return "new", None
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        raise UserError(f"{run_dir} exists but is not a run folder; choose another run_name")
    if config_from_dict(read_yaml(saved)) != config:
        raise UserError(
            f"{run_dir} holds a run with another config; continue it with "
            f"'classicnets train --resume {run_dir}' or choose another train.run_name"
        )
    summary = read_summary(run_dir, [])
    if summary is not None and summary.status == "complete":
        return "complete", run_dir
    checkpoints = run_dir / CHECKPOINTS_DIR
    if (checkpoints / "last.pt").exists() or (checkpoints / "previous.pt").exists():
        log.info("train.run_name=%s: resuming %s", config.train.run_name, run_dir)
        return "resume", run_dir
    clear_unstarted_run(run_dir)  # only if it provably holds no run
    return "new", None


@dataclass
class RunOutputs:
    """What rank 0 writes while training: metrics.jsonl/csv, steps.jsonl, summary.json's
    fixed part, and TensorBoard's event files when train.tensorboard is on."""

    epochs: EpochLog
    steps: StepLog
    summary: Summary
    tensorboard: Any

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def open_outputs(
    config: RunConfig, parts: RunParts, state: TrainState, run_dir: Path
) -> RunOutputs:
    """The run's outputs, rewritten from `state` (the checkpoint's truth on a resume)."""
    info = parts.info
    summary = Summary(
        status="running",
        model=config.model.name,
        dataset=config.data.name,
        num_classes=len(info.classes),
        classes=list(info.classes),
        params=parts.model.record.params,
        macs=parts.model.record.macs,
        input_size=[3, info.image_size, info.image_size],
        epochs=state.epochs_done,
        epochs_planned=config.train.epochs,
        seed=config.train.seed,
    )
    return RunOutputs(
        EpochLog(run_dir, [EpochRecord(**row) for row in state.history]),
        StepLog(run_dir, state.global_step),
        summary,
        tensorboard_writer(config.train, run_dir),
    )
