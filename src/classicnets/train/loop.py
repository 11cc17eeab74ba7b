"""fit() and train_one_epoch(): the one training loop, with exact resume.

Every batch's data randomness is a function of (seed, epoch, batch index) (see
classicnets.data), and the checkpoint carries every RNG state, so a run resumed from any
checkpoint, even one saved mid-epoch, continues bit for bit as if it had never stopped.
Under torchrun the same loop runs on every rank (train/distributed.py has the rules).
"""

import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classicnets.config import RunConfig, TrainConfig, save_config
from classicnets.precision import Precision, denormals_flushed
from classicnets.run_record import (
    CONFIG_FILE,
    StepLog,
    StepRecord,
    write_model_record,
    write_summary,
)
from classicnets.train.best_weights import keep_final_files
from classicnets.train.checkpoint import load_resume_checkpoint
from classicnets.train.distributed import (
    DistContext,
    barrier,
    broadcast_from_main,
    distributed_session,
    global_batch_count,
    rank_loss,
)
from classicnets.train.losses import classification_loss, main_logits
from classicnets.train.optim import current_lr
from classicnets.train.progress import Progress
from classicnets.train.run import (
    Run,
    close_epoch,
    epoch_record,
    final_test,
    record_failure,
    save_last,
)
from classicnets.train.run_folder import (
    log_tensorboard_step,
    open_outputs,
    restart_point,
    start_run_folder,
)
from classicnets.train.run_lock import RunLock
from classicnets.train.seeding import restore_rng_state
from classicnets.train.setup import RunParts, build_run_parts
from classicnets.train.state import (
    EpochSums,
    StopFlag,
    TrainState,
    check_finite,
    summary_at,
)

log = logging.getLogger(__name__)


def fit(
    config: RunConfig,
    out_root: Path = Path("runs"),
    *,
    resume: Path | None = None,
    command: Sequence[str] = (),
    stop_after_steps: int | None = None,
    run_name: str | None = None,
) -> Path:
    """Train `config` (or resume the run folder `resume`) and return the run folder.

    `stop_after_steps` behaves like a Ctrl-C after that many optimizer steps in total: the
    run saves checkpoints/last.pt and stops, resumable (used by tests and fault drills).
    `run_name` makes the run folder exactly out_root/run_name (it must not exist yet).
    With train.run_name instead, an existing out_root/<train.run_name> holding a checkpoint
    of the same config is resumed: what restarted torchrun workers need.
    Under torchrun, every rank calls fit() and gets the same run folder back.
    """
    with (
        denormals_flushed(config.train.flush_denormals),  # before torch starts its thread pool
        distributed_session(config.train) as ctx,
        contextlib.ExitStack() as locks,
    ):
        if resume is None and run_name is None and config.train.run_name:
            mode, found = broadcast_from_main(
                restart_point(config, out_root) if ctx.is_main else ("", None), ctx
            )
            if mode == "complete" and found is not None:
                log.info("%s is already complete; nothing to do", found)
                return found
            resume, run_name = found, config.train.run_name
        return _fit(config, out_root, resume, command, stop_after_steps, run_name, ctx, locks)


@dataclass
class EpochControl:
    """What may end an epoch early, and where its mid-epoch saves and step lines go."""

    stop: StopFlag
    stop_after_steps: int | None = None  # like a Ctrl-C after this many steps in total
    save_last: Callable[[EpochSums], None] = lambda _sums: None
    steps: StepLog | None = None  # steps.jsonl, on rank 0 of a run with a folder
    tensorboard: Any = None  # the run's SummaryWriter with train.tensorboard=true, on rank 0


def _fit(
    config: RunConfig,
    out_root: Path,
    resume: Path | None,
    command: Sequence[str],
    stop_after_steps: int | None,
    run_name: str | None,
    ctx: DistContext,
    locks: contextlib.ExitStack,
) -> Path:
    checkpoint: dict[str, Any] | None = None
    if resume is not None:
        if ctx.is_main:  # one writer per run folder, held until fit() returns
            locks.enter_context(RunLock(resume))
        checkpoint, checkpoint_path = load_resume_checkpoint(resume)
        log.info("resuming %s from %s", resume, checkpoint_path.name)
    parts = build_run_parts(config, checkpoint, ctx)
    state = TrainState(**checkpoint["train_state"]) if checkpoint else TrainState()
    if checkpoint is not None:
        assert resume is not None
        run_dir = resume
        if ctx.is_main:
            save_config(config, run_dir / CONFIG_FILE)
            write_model_record(run_dir, parts.model.record)
        _restore_rank_rng(checkpoint, ctx)
    else:
        created = (
            start_run_folder(config, parts, out_root, command, run_name) if ctx.is_main else None
        )
        if created is not None:
            locks.enter_context(RunLock(created))
        run_dir = _shared_path(broadcast_from_main(created, ctx))
    outputs = open_outputs(config, parts, state, run_dir) if ctx.is_main else None
    run = Run(config, parts, state, run_dir, outputs, state.wall_seconds)
    run.saved_step = state.global_step if checkpoint is not None else None
    try:
        with StopFlag() as stop:
            status = _run_epochs(run, stop, stop_after_steps)
        state.wall_seconds = run.wall_seconds()
        barrier(ctx)  # rank 0 has written best.pt, which every rank reads for the test
        test = final_test(run) if status == "complete" else None
        if outputs is not None:
            if status == "complete":
                keep_final_files(run_dir, config.train.keep_optimizer_state)
            write_summary(run_dir, summary_at(outputs.summary, state, status, test))
    except BaseException as error:
        if outputs is not None:
            record_failure(run_dir, outputs, state, error)
        raise
    finally:
        if outputs is not None:
            outputs.close()
    return run_dir


def _restore_rank_rng(checkpoint: dict[str, Any], ctx: DistContext) -> None:
    """Each rank's own RNG state when the run had as many ranks, else rank 0's (saved as rng)."""
    rank_states: list[dict[str, Any]] | None = checkpoint.get("rank_rng")
    if rank_states is not None and len(rank_states) == ctx.world_size:
        restore_rng_state(rank_states[ctx.rank])
    else:
        restore_rng_state(checkpoint["rng"])


def _shared_path(path: Path | None) -> Path:
    if path is None:
        raise RuntimeError("rank 0 sent no run folder")
    return path


def _run_epochs(run: Run, stop: StopFlag, stop_after_steps: int | None) -> str:
    """Train until the planned epochs, early stopping, Ctrl-C or `stop_after_steps`.

    Every rank runs this; `run.outputs` (and the writes) exist on rank 0 only.
    """
    cfg, parts, state = run.config.train, run.parts, run.state
    steps = run.outputs.steps if run.outputs is not None else None
    writer = run.outputs.tensorboard if run.outputs is not None else None
    control = EpochControl(stop, stop_after_steps, functools.partial(save_last, run), steps, writer)
    if run.outputs is not None:
        write_summary(run.run_dir, summary_at(run.outputs.summary, state, "running", None))
    for epoch in range(state.epochs_done + 1, cfg.epochs + 1):
        optimizer, device = parts.optimization.optimizer, parts.precision.device
        sums = EpochSums.start(current_lr(optimizer), device, state.partial, parts.dist.is_main)
        if not train_one_epoch(parts, cfg, epoch, state, sums, control):
            save_last(run, sums)
            log.info(
                "stopped in epoch %d after %d batches; resume with: classicnets train --resume %s",
                epoch,
                state.batches_done,
                run.run_dir,
            )
            return "interrupted"
        record = epoch_record(parts, epoch, sums.reduced(parts.dist)[0])
        close_epoch(run, record, sums.seconds)
        if cfg.early_stop_patience and state.stale_epochs >= cfg.early_stop_patience:
            log.info(
                "early stop: no %s gain for %d epochs", cfg.early_stop_metric, state.stale_epochs
            )
            break
        if cfg.stop_at_train_top1 and record.train_top1 >= cfg.stop_at_train_top1:
            log.info(
                "stopped at epoch %d: training top-1 %.2f%% reached train.stop_at_train_top1=%g",
                epoch,
                record.train_top1,
                cfg.stop_at_train_top1,
            )
            break
    return "complete"


def train_one_epoch(
    parts: RunParts,
    cfg: TrainConfig,
    epoch: int,
    state: TrainState,
    sums: EpochSums,
    control: EpochControl,
) -> bool:
    """One pass over the training loader from `state.batches_done`; False if stopped early.

    Under torchrun each rank feeds its slice of the global batch, and a Ctrl-C is agreed on at
    the next log step, so that every rank stops after the same step.
    """
    model, precision, loader = parts.model.wrapped, parts.precision, parts.data.train_loader
    optimizer, schedule = parts.optimization.optimizer, parts.optimization.schedule
    scaler, lookahead = parts.optimization.scaler, parts.optimization.lookahead
    start_epoch = getattr(parts.model.module, "start_epoch", None)
    if callable(start_epoch):  # a model whose training changes by epoch (speedrun_cifar)
        start_epoch(epoch)
    model.train()
    progress = _epoch_progress(parts, cfg, epoch, state, sums)
    for x, y in loader.epoch(epoch, start_batch=state.batches_done):
        if precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(precision):
            output = model(x)
            loss = classification_loss(output, y, cfg.label_smoothing)
        scaler.scale(_rank_share(loss, y, parts, cfg, state)).backward()  # type: ignore[no-untyped-call]
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if schedule.per_step is not None:
            schedule.per_step.step()
        sums.add(loss, main_logits(output), y)
        state.batches_done += 1
        state.global_step += 1
        if lookahead is not None:
            lookahead.after_step(parts.model.module, state.global_step)
        if not _after_step(parts, cfg, state, sums, control, progress):
            return False
    progress.close()
    return True


def _epoch_progress(
    parts: RunParts, cfg: TrainConfig, epoch: int, state: TrainState, sums: EpochSums
) -> Progress:
    return Progress(
        epoch,
        len(parts.data.train_loader),
        state.batches_done,
        parts.precision.device,
        enabled=cfg.progress,
        is_main=parts.dist.is_main,
        logged_loss=(sums.loss.state()["total"], sums.loss.count),
    )


def _autocast(precision: Precision) -> torch.autocast:
    dtype = precision.amp_dtype
    return torch.autocast(
        precision.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
    )


def _rank_share(
    loss: torch.Tensor, y: torch.Tensor, parts: RunParts, cfg: TrainConfig, state: TrainState
) -> torch.Tensor:
    """The loss to back-propagate: this rank's share of the global batch's mean loss."""
    ctx = parts.dist
    if not ctx.is_distributed:
        return loss
    count = global_batch_count(
        cfg.batch_size, parts.data.train_loader.num_samples, state.batches_done
    )
    return rank_loss(loss, y.shape[0], count, ctx.world_size)


def _after_step(
    parts: RunParts,
    cfg: TrainConfig,
    state: TrainState,
    sums: EpochSums,
    control: EpochControl,
    progress: Progress,
) -> bool:
    """Show progress, log a step line and save mid-epoch as due; False to stop here."""
    done, total = state.batches_done, progress.total
    is_text_step = progress.advance(done)
    is_log_step = done % cfg.log_every_steps == 0 or done == total
    agreed_stop = False
    if is_log_step or is_text_step:
        sums.seconds += progress.lap()
        agreed_stop = _show_progress(parts, state, sums, control, progress, is_log_step)
        progress.show_text(done, is_text_step)
    distributed = parts.dist.is_distributed
    if (agreed_stop if distributed else control.stop.requested) or (
        control.stop_after_steps is not None and state.global_step >= control.stop_after_steps
    ):
        sums.seconds += progress.lap()
        progress.close()
        return False
    if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
        sums.seconds += progress.lap()
        control.save_last(sums)
        progress.restart()
    return True


def _show_progress(
    parts: RunParts,
    state: TrainState,
    sums: EpochSums,
    control: EpochControl,
    progress: Progress,
    is_log_step: bool,
) -> bool:
    """Check and show the running loss over all ranks, and write its step line at a log step;
    True if any rank asked to stop."""
    total, any_stop = sums.reduced(parts.dist, control.stop.requested)
    check_finite(total, progress.epoch, state)
    lr = current_lr(parts.optimization.optimizer)
    loss = total.loss.state()  # one read of the device's sums
    mean_loss = loss["total"] / max(loss["count"], 1)
    progress.set_values(mean_loss, total.correct.value(), lr, loss["count"], total.seconds)
    if is_log_step and control.steps is not None:
        interval_loss = progress.interval_loss(loss["total"], loss["count"])
        step = StepRecord(state.global_step, progress.epoch, lr, interval_loss)
        control.steps.append(step)
        if control.tensorboard is not None:
            log_tensorboard_step(control.tensorboard, step)
    return any_stop


__all__ = ["EpochControl", "fit", "train_one_epoch"]
