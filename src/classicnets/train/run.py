"""A training run in progress (Run), and what happens at an epoch's end and the run's end:
validation, the epoch record, checkpoints, summary.json and the test of the best weights."""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from classicnets.config import RunConfig, config_to_dict
from classicnets.errors import UserError
from classicnets.evaluate.loop import EvalResult, evaluate, merge_results
from classicnets.evaluate.split import evaluate_split, write_split_result
from classicnets.run_record import CONFIG_FILE, EpochRecord, EvalMetrics, write_summary
from classicnets.train.best_weights import BEST_WEIGHTS_FILE
from classicnets.train.checkpoint import load_checkpoint, refuse_non_finite, save_checkpoint
from classicnets.train.distributed import gather_all, gather_to_main, sync_buffers
from classicnets.train.run_folder import RunOutputs, log_tensorboard
from classicnets.train.run_lock import check_run_folder
from classicnets.train.seeding import rng_state
from classicnets.train.setup import RunParts
from classicnets.train.state import EpochSums, TrainState, checkpoint_dict, summary_at

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One fit() call's training: what its epochs and checkpoints act on."""

    config: RunConfig
    parts: RunParts
    state: TrainState
    run_dir: Path
    outputs: RunOutputs | None  # rank 0 only: the files written while training
    earlier_seconds: float = 0.0  # wall time of the sessions before a resume
    started: float = field(default_factory=time.perf_counter)
    saved_step: int | None = None  # the step checkpoints/last.pt holds, for a divergence message

    def wall_seconds(self) -> float:
        return self.earlier_seconds + time.perf_counter() - self.started


def record_failure(
    run_dir: Path, outputs: RunOutputs, state: TrainState, error: BaseException
) -> None:
    """Mark summary.json interrupted (Ctrl-C twice) or failed; never mask the error itself."""
    status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    if not (run_dir / CONFIG_FILE).is_file():  # the folder vanished: never recreate it
        return
    try:
        write_summary(run_dir, summary_at(outputs.summary, state, status, None))
    except (UserError, OSError):  # e.g. the disk that stopped the run is still full
        log.debug("could not mark %s as %s", run_dir, status)


def save_last(run: Run, mid_epoch: EpochSums | None) -> None:
    """checkpoints/last.pt (the old one kept as previous.pt), mid-epoch with its sums."""
    ctx, state = run.parts.dist, run.state
    # every rank checks (their weights are equal), so all stop together
    refuse_non_finite(run.parts.model.module.state_dict(), state.global_step, run.saved_step)
    if ctx.is_main:
        check_run_folder(run.run_dir)
    state.wall_seconds = run.wall_seconds()
    state.partial = mid_epoch.reduced(ctx)[0].state() if mid_epoch is not None else {}
    rank_rng = gather_to_main(rng_state(), ctx)  # each rank's dropout stream
    if ctx.is_main:
        checkpoint = checkpoint_dict(config_to_dict(run.config), run.parts, state)
        if ctx.is_distributed:
            checkpoint["rank_rng"] = rank_rng
        save_checkpoint(checkpoint, run.run_dir / "checkpoints/last.pt", keep_previous=True)
    run.saved_step = state.global_step


def close_epoch(run: Run, record: EpochRecord, train_seconds: float) -> None:
    """Book a finished epoch: progress, the plateau schedule, checkpoints and metrics."""
    state, parts = run.state, run.parts
    is_best = state.book_epoch(record, run.config.train.early_stop_metric)
    state.train_seconds += train_seconds
    plateau = parts.optimization.schedule.plateau
    if plateau is not None and record.val_top1 is not None:
        plateau.step(record.val_top1)
    save_last(run, None)
    if run.outputs is not None:  # rank 0
        if is_best:
            best = checkpoint_dict(config_to_dict(run.config), parts, state, weights_only=True)
            save_checkpoint(best, run.run_dir / "checkpoints/best.pt")
        run.outputs.epochs.append(record)
        log.info(record.summary_line())
        if run.outputs.tensorboard is not None:
            log_tensorboard(run.outputs.tensorboard, record)


def epoch_record(parts: RunParts, epoch: int, sums: EpochSums) -> EpochRecord:
    """The epoch's record from its (all-rank) sums and a validation pass; under torchrun each
    rank scores its shard of the val split and every rank gets the merged result."""
    val = None
    if parts.data.val_loader is not None:
        sync_buffers(parts.model.module, parts.dist)
        val = evaluate(
            parts.model.for_eval(parts.dist),
            parts.data.val_loader.epoch(0),
            parts.precision,
            len(parts.info.classes),
        )
        if parts.dist.is_distributed:
            val = merge_results(gather_all(val, parts.dist))
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its seed from this RNG
        monitor = _monitor_test(parts)
    return EpochRecord(
        epoch=epoch,
        lr=sums.lr,
        train_loss=sums.loss.value(),
        train_top1=100.0 * sums.correct.value(),
        val_loss=val.loss if val else None,
        val_top1=val.top1 if val else None,
        val_top5=val.top5 if val else None,
        epoch_seconds=sums.seconds,
        images_per_second=sums.loss.count / max(sums.seconds, 1e-9),
        monitor_test_loss=monitor.loss if monitor else None,
        monitor_test_top1=monitor.top1 if monitor else None,
    )


def _monitor_test(parts: RunParts) -> EvalResult | None:
    """train.monitor_test: the test split scored now, for the record only (nothing selects,
    stops or schedules on it: close_epoch reads val_top1 alone)."""
    loader = parts.data.monitor_loader
    if loader is None:
        return None
    sync_buffers(parts.model.module, parts.dist)
    result = evaluate(
        parts.model.for_eval(parts.dist), loader.epoch(0), parts.precision, len(parts.info.classes)
    )
    return merge_results(gather_all(result, parts.dist)) if parts.dist.is_distributed else result


def final_test(run: Run) -> EvalMetrics | None:
    """Score the best checkpoint (by val top-1), or with train.test_checkpoint=last the last
    epoch's weights, on the test split into eval/test[-tta]/.

    Every rank of a data-parallel run scores its shard; rank 0 writes (and returns) the result.
    """
    parts, cfg = run.parts, run.config.train
    if cfg.test_checkpoint == "last":
        sync_buffers(parts.model.module, parts.dist)  # rank 0's statistics, as last.pt holds
    else:
        # a resumed complete run may have only the latter
        for name in ("best.pt", BEST_WEIGHTS_FILE):
            best = run.run_dir / "checkpoints" / name
            if best.is_file():
                parts.model.module.load_state_dict(load_checkpoint(best)["model"])
                break
    result = evaluate_split(
        parts.model.module,
        parts.data.splits,
        "test",
        cfg.tta,
        run.config.data,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        precision=parts.precision,
        shard=parts.dist.shard,
    )
    results = gather_to_main(result, parts.dist)
    if results is None:
        return None
    merged = merge_results(results) if len(results) > 1 else result
    return write_split_result(merged, run.run_dir, parts.data.splits, "test", cfg.tta)
