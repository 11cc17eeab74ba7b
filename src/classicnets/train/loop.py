"""fit() and train_one_epoch(): the one training loop, with exact resume.

Every batch's data randomness is a function of (seed, epoch, batch index) (see
classicnets.data), and the checkpoint carries every RNG state, so a run resumed from any
checkpoint, even one saved mid-epoch, continues bit for bit as if it had never stopped.
Under torchrun the same loop runs on every rank (train/distributed.py has the rules).
"""

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from classicnets.config import (
    RunConfig,
    TrainConfig,
    config_from_dict,
    read_yaml,
    save_config,
)
from classicnets.errors import UserError
from classicnets.evaluate.metrics import EpochRecord, topk_correct
from classicnets.train.checkpoint import load_resume_checkpoint, save_checkpoint
from classicnets.train.distributed import (
    DistContext,
    barrier,
    broadcast_from_main,
    distributed_session,
    gather_all,
    gather_to_main,
    global_batch_count,
    rank_loss,
    sync_buffers,
)
from classicnets.train.losses import classification_loss, main_logits
from classicnets.train.optim import current_lr
from classicnets.train.run_folder import (
    MetricsLog,
    log_tensorboard,
    tensorboard_writer,
)
from classicnets.train.seeding import restore_rng_state, rng_state
from classicnets.train.setup import RunParts, build_run_parts, final_test, start_run_folder
from classicnets.train.state import (
    EpochSums,
    StopFlag,
    TrainState,
    check_finite,
    checkpoint_dict,
    write_summary,
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
    with distributed_session(config.train) as ctx:
        if resume is None and run_name is None and config.train.run_name:
            mode, found = broadcast_from_main(
                _restart_point(config, out_root) if ctx.is_main else ("", None), ctx
            )
            if mode == "complete" and found is not None:
                log.info("%s is already complete; nothing to do", found)
                return found
            resume, run_name = found, config.train.run_name
        return _fit(config, out_root, resume, command, stop_after_steps, run_name, ctx)


def _restart_point(config: RunConfig, out_root: Path) -> tuple[str, Path | None]:
    """For a fixed train.run_name: ("resume", folder) if it holds a checkpoint of this config,
    ("complete", folder) if that run finished, else ("new", None) after clearing a folder
    that a start killed before its first checkpoint left behind."""
    run_dir = out_root / config.train.run_name
    if not run_dir.exists():
        return "new", None
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise UserError(f"{run_dir} exists but is not a run folder; choose another run_name")
    if config_from_dict(read_yaml(saved)) != config:
        raise UserError(
            f"{run_dir} holds a run with another config; continue it with "
            f"'classicnets train --resume {run_dir}' or choose another train.run_name"
        )
    summary = run_dir / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("status") == "complete":
        return "complete", run_dir
    checkpoints = run_dir / "checkpoints"
    if (checkpoints / "last.pt").exists() or (checkpoints / "previous.pt").exists():
        log.info("train.run_name=%s: resuming %s", config.train.run_name, run_dir)
        return "resume", run_dir
    shutil.rmtree(run_dir)
    return "new", None


def _fit(
    config: RunConfig,
    out_root: Path,
    resume: Path | None,
    command: Sequence[str],
    stop_after_steps: int | None,
    run_name: str | None,
    ctx: DistContext,
) -> Path:
    checkpoint: dict[str, Any] | None = None
    if resume is not None:
        checkpoint, checkpoint_path = load_resume_checkpoint(resume)
        log.info("resuming %s from %s", resume, checkpoint_path.name)
    parts = build_run_parts(config, checkpoint, ctx)
    state = TrainState(**checkpoint["train_state"]) if checkpoint else TrainState()
    if checkpoint is not None:
        assert resume is not None
        run_dir = resume
        if ctx.is_main:
            save_config(config, run_dir / "config.yaml")
        _restore_rank_rng(checkpoint, ctx)
    else:
        created = (
            start_run_folder(config, parts, out_root, command, run_name) if ctx.is_main else None
        )
        run_dir = _shared_path(broadcast_from_main(created, ctx))
    metrics = MetricsLog(run_dir, state.history) if ctx.is_main else None
    writer = tensorboard_writer(config.train, run_dir) if ctx.is_main else None
    clock = time.perf_counter()
    base_wall = state.wall_seconds
    status = "running"
    try:
        with StopFlag() as stop:
            status = _run_epochs(
                config,
                parts,
                state,
                run_dir,
                metrics,
                writer,
                stop,
                stop_after_steps,
                lambda: base_wall + time.perf_counter() - clock,
            )
        state.wall_seconds = base_wall + time.perf_counter() - clock
        barrier(ctx)  # rank 0 has written best.pt, which every rank reads for the test
        test = final_test(config, parts, run_dir) if status == "complete" else None
        if ctx.is_main:
            write_summary(config, parts, state, run_dir, status, test)
    except BaseException as error:
        if ctx.is_main:
            _record_failure(config, parts, state, run_dir, error)
        raise
    finally:
        if writer is not None:
            writer.close()
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


def _record_failure(
    config: RunConfig, parts: RunParts, state: TrainState, run_dir: Path, error: BaseException
) -> None:
    """Mark summary.json interrupted (Ctrl-C twice) or failed; never mask the error itself."""
    status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    try:
        write_summary(config, parts, state, run_dir, status, None)
    except (UserError, OSError):  # e.g. the disk that stopped the run is still full
        log.debug("could not mark %s as %s", run_dir, status)


def _run_epochs(
    config: RunConfig,
    parts: RunParts,
    state: TrainState,
    run_dir: Path,
    metrics: MetricsLog | None,
    writer: Any,
    stop: StopFlag,
    stop_after_steps: int | None,
    wall_seconds: Callable[[], float],
) -> str:
    """Train until the planned epochs, early stopping, Ctrl-C or `stop_after_steps`.

    Every rank runs this; `metrics` (and the writes) exist on rank 0 only.
    """
    cfg, ctx = config.train, parts.dist

    def save_last(mid_epoch: EpochSums | None) -> None:
        state.wall_seconds = wall_seconds()
        state.partial = mid_epoch.reduced(ctx)[0].state() if mid_epoch is not None else {}
        rank_rng = gather_to_main(rng_state(), ctx)  # each rank's dropout stream
        if ctx.is_main:
            checkpoint = checkpoint_dict(config, parts, state)
            if ctx.is_distributed:
                checkpoint["rank_rng"] = rank_rng
            save_checkpoint(checkpoint, run_dir / "checkpoints/last.pt", keep_previous=True)

    if ctx.is_main:
        write_summary(config, parts, state, run_dir, "running", None)
    for epoch in range(state.epochs_done + 1, cfg.epochs + 1):
        sums = EpochSums.start(
            current_lr(parts.optimizer), parts.precision.device, state.partial, ctx.is_main
        )
        finished = train_one_epoch(
            parts, cfg, epoch, state, sums, stop, stop_after_steps, save_last
        )
        if not finished:
            save_last(sums)
            log.info(
                "stopped in epoch %d after %d batches; resume with: classicnets train --resume %s",
                epoch,
                state.batches_done,
                run_dir,
            )
            return "interrupted"
        record = _end_epoch(parts, epoch, sums.reduced(ctx)[0])
        is_best = (
            record.val_top1 is None
            or state.best_top1 is None
            or (record.val_top1 > state.best_top1)
        )
        state.epochs_done, state.batches_done, state.partial = epoch, 0, {}
        state.history.append(record.to_dict())
        state.train_seconds += sums.seconds
        if is_best:
            state.best_top1, state.best_epoch, state.stale_epochs = record.val_top1, epoch, 0
        else:
            state.stale_epochs += 1
        if parts.schedule.plateau is not None and record.val_top1 is not None:
            parts.schedule.plateau.step(record.val_top1)
        save_last(None)
        if metrics is not None:  # rank 0
            if is_best:
                save_checkpoint(
                    checkpoint_dict(config, parts, state, weights_only=True),
                    run_dir / "checkpoints/best.pt",
                )
            metrics.append(record)
            log.info(record.summary_line())
        if writer is not None:
            log_tensorboard(writer, record)
        if cfg.early_stop_patience and state.stale_epochs >= cfg.early_stop_patience:
            log.info("early stop: no val top-1 gain for %d epochs", state.stale_epochs)
            break
    return "complete"


def train_one_epoch(
    parts: RunParts,
    cfg: TrainConfig,
    epoch: int,
    state: TrainState,
    sums: EpochSums,
    stop: StopFlag,
    stop_after_steps: int | None,
    save_last: Callable[[EpochSums], None],
) -> bool:
    """One pass over the training loader from `state.batches_done`; False if stopped early.

    Under torchrun each rank feeds its slice of the global batch, and a Ctrl-C is agreed on at
    the next log step, so that every rank stops after the same step.
    """
    model, optimizer, precision, ctx = parts.model, parts.optimizer, parts.precision, parts.dist
    model.train()
    loader = parts.train_loader
    bar = tqdm(
        total=len(loader),
        initial=state.batches_done,
        desc=f"epoch {epoch}",
        disable=None if cfg.progress and ctx.is_main else True,
        leave=False,
        dynamic_ncols=True,
    )
    # Without a terminal (nohup, a batch job) tqdm draws nothing: print a line every tenth
    # of the epoch instead, so a log shows progress long before the epoch ends. Every rank
    # takes part in these steps (the running sums are reduced over ranks); rank 0 prints.
    text_every = max(1, len(loader) // 10) if cfg.progress else 0
    print_text = ctx.is_main and bool(bar.disable)
    started = time.perf_counter()
    agreed_stop = False
    for x, y in loader.epoch(epoch, start_batch=state.batches_done):
        if precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            precision.device.type,
            dtype=precision.amp_dtype or torch.float32,
            enabled=precision.amp_dtype is not None,
        ):
            output = model(x)
            loss = classification_loss(output, y, cfg.label_smoothing)
        step_loss = loss
        if ctx.is_distributed:
            count = global_batch_count(cfg.batch_size, loader.num_samples, state.batches_done)
            step_loss = rank_loss(loss, y.shape[0], count, ctx.world_size)
        parts.scaler.scale(step_loss).backward()  # type: ignore[no-untyped-call]
        if cfg.grad_clip > 0:
            parts.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        parts.scaler.step(optimizer)
        parts.scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if parts.schedule.per_step is not None:
            parts.schedule.per_step.step()
        if y.shape[0]:  # a rank's slice of a short last batch can be empty
            sums.loss.add(loss.detach().float() * y.shape[0], y.shape[0])
            sums.correct.add(topk_correct(main_logits(output).detach(), y, ks=(1,))[0], y.shape[0])
        state.batches_done += 1
        state.global_step += 1
        bar.update(1)
        show_text = bool(text_every) and state.batches_done % text_every == 0
        if (
            state.batches_done % cfg.log_every_steps == 0
            or state.batches_done == len(loader)
            or show_text
        ):
            sums.seconds += time.perf_counter() - started
            started = time.perf_counter()
            agreed_stop = _show_progress(bar, sums, optimizer, epoch, state, ctx, stop.requested)
            if show_text and print_text and state.batches_done < len(loader):
                log.info(f"epoch {epoch} step {state.batches_done}/{len(loader)} | {bar.postfix}")
        if (agreed_stop if ctx.is_distributed else stop.requested) or (
            stop_after_steps is not None and state.global_step >= stop_after_steps
        ):
            sums.seconds += time.perf_counter() - started
            bar.close()
            return False
        if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
            sums.seconds += time.perf_counter() - started
            save_last(sums)
            started = time.perf_counter()
    bar.close()
    return True


def _show_progress(
    bar: Any,
    sums: EpochSums,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    state: TrainState,
    ctx: DistContext,
    stop_requested: bool,
) -> bool:
    """Check and show the running loss over all ranks; True if any rank asked to stop."""
    total, any_stop = sums.reduced(ctx, stop_requested)
    check_finite(total, epoch, state)
    shown = {  # a dict keeps this order; tqdm sorts keyword arguments
        "loss": f"{total.loss.value():.3f}",
        "top1": f"{100 * total.correct.value():.1f}",
        "lr": f"{current_lr(optimizer):.2g}",
        "img_s": f"{total.loss.count / max(total.seconds, 1e-9):.0f}",
    }
    bar.set_postfix(shown)
    return any_stop


def _end_epoch(parts: RunParts, epoch: int, sums: EpochSums) -> EpochRecord:
    """The epoch's record from its (all-rank) sums and a validation pass; under torchrun each
    rank scores its shard of the val split and every rank gets the merged result."""
    from classicnets.evaluate.loop import evaluate, merge_results

    val = None
    if parts.val_loader is not None:
        sync_buffers(parts.raw_model, parts.dist)
        val = evaluate(
            parts.eval_model, parts.val_loader.epoch(0), parts.precision, len(parts.info.classes)
        )
        if parts.dist.is_distributed:
            val = merge_results(gather_all(val, parts.dist))
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
    )


__all__ = ["fit", "train_one_epoch"]
