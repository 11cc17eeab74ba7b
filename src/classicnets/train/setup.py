"""Building the pieces of a run from its config: data, model, optimizer, schedule, run folder."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classicnets.config import ModelConfig, RunConfig, TestViews, knob_values, save_config
from classicnets.data import DATASETS, DataSplits, Loader, build_loader, build_splits, sample_ids
from classicnets.device import pick_device
from classicnets.errors import UserError
from classicnets.evaluate.loop import evaluate, merge_results, write_eval_outputs
from classicnets.models import build_model, check_input_size, model_info
from classicnets.models.alexnet import TWO_COLUMN_MODELS, AlexNet, split_columns
from classicnets.models.summary import count_macs
from classicnets.precision import Precision, pick_precision
from classicnets.train.checkpoint import load_checkpoint
from classicnets.train.distributed import (
    SINGLE_PROCESS,
    DistContext,
    gather_to_main,
    prepare_model,
    rank_device,
)
from classicnets.train.optim import Schedule, build_optimizer, build_scheduler
from classicnets.train.run_folder import create_run_dir, environment, write_json
from classicnets.train.seeding import seed_everything

log = logging.getLogger(__name__)


@dataclass
class RunParts:
    precision: Precision
    splits: DataSplits
    train_loader: Loader
    val_loader: Loader | None
    raw_model: nn.Module  # the module whose state_dict is saved
    model: nn.Module  # raw_model, or its DistributedDataParallel and/or torch.compile wrapper
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    params: int
    macs: int | None
    dist: DistContext = SINGLE_PROCESS

    @property
    def info(self) -> Any:
        return self.splits.info

    @property
    def eval_model(self) -> nn.Module:
        """The module to evaluate with. Not the DDP wrapper: its forward is a collective
        (buffer broadcast) that ranks holding different numbers of eval batches cannot join."""
        return self.raw_model if self.dist.is_distributed else self.model


def model_options(cfg: ModelConfig) -> dict[str, Any]:
    """The architecture knobs the user set (None keeps the builder's paper default)."""
    return knob_values(cfg)


def check_names(config: RunConfig) -> None:
    """Fail on an unknown model, model option or data set before any data is read."""
    info = model_info(config.model.name)
    unknown = sorted(set(model_options(config.model)) - set(info.options))
    if unknown:
        raise UserError(
            f"model {info.name} does not take model.{unknown[0]}; it takes "
            f"{', '.join(info.options) or 'no options'}"
        )
    if config.model.column_devices and info.name not in TWO_COLUMN_MODELS:
        raise UserError(
            f"model.column_devices splits the two columns of {' or '.join(TWO_COLUMN_MODELS)} "
            f"over two devices; {info.name} has no columns"
        )
    DATASETS.get(config.data.name)


def build_model_for(cfg: ModelConfig, num_classes: int, image_size: int) -> nn.Module:
    """The configured model on the CPU, or with model.column_devices its two columns placed
    on those devices (AlexNet §3.2); the caller moves a one-device model."""
    check_input_size(cfg.name, image_size)
    model = build_model(cfg.name, num_classes=num_classes, **model_options(cfg))
    if cfg.weights:
        load_weights(model, Path(cfg.weights))
    if cfg.column_devices:
        if not isinstance(model, AlexNet):
            raise UserError(f"model.column_devices: {cfg.name} has no columns to split")
        model = split_columns(model, [pick_device(name) for name in cfg.column_devices])
    return model


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a state_dict (or a classicnets checkpoint) into `model`, strictly."""
    if not path.is_file():
        raise UserError(f"model.weights: no file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise UserError(
            f"model.weights: {path} is truncated or not a weights file ({type(error).__name__})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    load_state_strict(model, state, str(path))


def load_state_strict(model: nn.Module, state: dict[str, Any], source: str) -> None:
    """Strict load_state_dict; another architecture or class count is a one-line UserError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = (f"{len(missing)} missing keys (e.g. {missing[:2]}), " if missing else "") + (
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]}), " if unexpected else ""
        )
        if wrong:
            key = wrong[0]
            detail += (
                f"shape mismatch at {key}: file {tuple(state[key].shape)} vs model "
                f"{tuple(own[key].shape)} (another class count or architecture?)"
            )
        raise UserError(f"{source} does not fit this model: {detail.rstrip(', ')}")
    model.load_state_dict(state, strict=True)


def build_run_parts(
    config: RunConfig, checkpoint: dict[str, Any] | None, ctx: DistContext = SINGLE_PROCESS
) -> RunParts:
    """Seed, then build data, model, optimizer and schedule; restore them from `checkpoint`.

    In a data-parallel run (`ctx`), the loaders feed this rank's shard, the model is wrapped
    in DistributedDataParallel, and dropout is seeded with train.seed + rank.
    """
    cfg = config.train
    check_names(config)
    if ctx.is_distributed and config.model.column_devices:
        raise UserError(
            "model.column_devices (one model over two devices) cannot be combined with "
            "torchrun data parallelism; use one or the other"
        )
    device = rank_device(pick_device(cfg.device), ctx)
    precision = pick_precision(cfg, device)
    seed_everything(cfg.seed + ctx.rank, cfg.deterministic)
    splits = build_splits(config.data)
    info = splits.info
    if checkpoint is not None and list(checkpoint["classes"]) != list(info.classes):
        raise UserError(
            "the checkpoint's classes differ from the data set's "
            f"({len(checkpoint['classes'])} vs {len(info.classes)} classes)"
        )
    raw_model = build_model_for(config.model, len(info.classes), info.image_size)
    params = sum(p.numel() for p in raw_model.parameters())
    macs = _count_macs_quietly(raw_model, info.image_size)
    if not config.model.column_devices:  # columns stay on their own devices
        raw_model.to(device)
    if precision.channels_last:
        raw_model.to(memory_format=torch.channels_last)
    train_loader = build_loader(
        splits.train,
        config.data,
        info,
        train=True,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        device=device,
        shard=ctx.shard,
    )
    val_loader = None
    if splits.val is not None:
        val_loader = build_loader(
            splits.val,
            config.data,
            info,
            train=False,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            device=device,
            shard=ctx.shard,
        )
    optimizer = build_optimizer(raw_model, config.optim)
    schedule = build_scheduler(optimizer, config.schedule, cfg.epochs, len(train_loader))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.use_grad_scaler)
    if checkpoint is not None:
        load_state_strict(raw_model, checkpoint["model"], "the checkpoint")
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        scaler.load_state_dict(checkpoint["scaler"])
    model = prepare_model(raw_model, ctx, device, cfg.sync_batchnorm)
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    return RunParts(
        precision,
        splits,
        train_loader,
        val_loader,
        raw_model,
        model,
        optimizer,
        schedule,
        scaler,
        params,
        macs,
        ctx,
    )


def _count_macs_quietly(model: nn.Module, image_size: int) -> int | None:
    """MACs per image, without touching the RNG or BatchNorm statistics of the run."""
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            return count_macs(model, (3, image_size, image_size))
    except Exception as error:  # the count is informative only; never block a run on it
        log.debug("MAC count failed: %s", error)
        return None
    finally:
        model.train(was_training)


def start_run_folder(
    config: RunConfig,
    parts: RunParts,
    out_root: Path,
    command: Sequence[str],
    run_name: str | None = None,
) -> Path:
    run_dir = create_run_dir(out_root, config.model.name, config.data.name, run_name)
    save_config(config, run_dir / "config.yaml")
    precision = parts.precision
    write_json(run_dir / "env.json", environment(precision.device, precision.name, command))
    log.info("run folder: %s", run_dir)
    return run_dir


def final_test(config: RunConfig, parts: RunParts, run_dir: Path) -> dict[str, Any]:
    """Score the best checkpoint (by val top-1) on the test split into eval/test[-tta]/.

    Every rank of a data-parallel run scores its shard; rank 0 writes (and returns) the result.
    """
    best = run_dir / "checkpoints" / "best.pt"
    if best.is_file():
        parts.raw_model.load_state_dict(load_checkpoint(best)["model"])
    return evaluate_split(
        config,
        parts.raw_model,
        parts.splits,
        "test",
        config.train.tta,
        parts.precision,
        run_dir,
        parts.dist,
    )


def evaluate_split(
    config: RunConfig,
    model: nn.Module,
    splits: DataSplits,
    split: str,
    tta: TestViews,
    precision: Precision,
    out_root: Path,
    ctx: DistContext = SINGLE_PROCESS,
) -> dict[str, Any]:
    """Score `model` on one split and write eval/<split>[-<tta>]/; in a data-parallel run each
    rank scores its shard, and rank 0 merges, writes and returns the metrics (others get {})."""
    dataset = {"test": splits.test, "val": splits.val, "train": splits.train}[split]
    if dataset is None:
        raise UserError(f"this data set has no {split} split (set data.val_fraction > 0)")
    info = splits.info
    loader = build_loader(
        dataset,
        config.data,
        info,
        train=False,
        batch_size=config.train.batch_size,
        seed=config.train.seed,
        device=precision.device,
        tta=tta,
        shard=ctx.shard,
    )
    result = evaluate(
        model,
        loader.epoch(0),
        precision,
        len(info.classes),
        collect=True,
        mean_std=(info.mean, info.std),
    )
    parts = gather_to_main(result, ctx)
    if parts is None:
        return {}
    result = merge_results(parts) if len(parts) > 1 else result
    name = split if tta == "none" else f"{split}-{tta}"
    metrics = write_eval_outputs(
        result, out_root / "eval" / name, info.classes, sample_ids(dataset), split, tta
    )
    log.info(
        "%s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, tta=%s)",
        split,
        result.top1,
        result.top5,
        result.loss,
        result.count,
        tta,
    )
    return metrics
