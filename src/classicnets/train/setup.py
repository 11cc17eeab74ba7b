"""The parts of a run, built from its config: data, model, optimization (RunParts).

Each builder takes the narrow config it reads; build_run_parts is where they meet.
"""

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from classicnets.config import RunConfig
from classicnets.data import DATASETS, DatasetInfo, DataSplits, Loader, build_loader, build_splits
from classicnets.device import pick_device
from classicnets.errors import UserError
from classicnets.kernels import use_kernels
from classicnets.models.build import build_model_for, check_model_config, load_state_strict
from classicnets.models.summary import summarize
from classicnets.precision import Precision, pick_precision
from classicnets.run_record import LayerRecord, ModelRecord
from classicnets.train.distributed import SINGLE_PROCESS, DistContext, prepare_model, rank_device
from classicnets.train.lookahead import Lookahead
from classicnets.train.optim import Schedule, build_optimizer, build_scheduler
from classicnets.train.seeding import seed_everything

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """The data set's splits and the loaders that feed training and validation."""

    splits: DataSplits
    train_loader: Loader
    val_loader: Loader | None
    monitor_loader: Loader | None = None  # the test split, with train.monitor_test only

    @property
    def info(self) -> DatasetInfo:
        return self.splits.info


@dataclass
class RunModel:
    """The model, the wrapper that trains it, and its description for model.json."""

    module: nn.Module  # the module whose state_dict is saved
    wrapped: nn.Module  # module, or its DistributedDataParallel and/or torch.compile wrapper
    record: ModelRecord

    def for_eval(self, dist: DistContext) -> nn.Module:
        """Not the DDP wrapper: its forward is a collective (buffer broadcast) that ranks
        holding different numbers of eval batches cannot join."""
        return self.module if dist.is_distributed else self.wrapped


@dataclass
class Optimization:
    """The optimizer, its learning-rate schedule, the fp16 loss scaler and Lookahead's slow
    weights (optim.lookahead_every)."""

    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    lookahead: Lookahead | None = None

    def state_dict(self) -> dict[str, Any]:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        if self.lookahead is not None:
            state["lookahead"] = self.lookahead.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        if self.lookahead is not None:
            self.lookahead.load_state_dict(state["lookahead"])


@dataclass
class RunParts:
    precision: Precision
    dist: DistContext
    data: RunData
    model: RunModel
    optimization: Optimization

    @property
    def info(self) -> DatasetInfo:
        return self.data.info


def check_names(config: RunConfig) -> None:
    """Fail on an unknown model, model option or data set before any data is read."""
    check_model_config(config.model)
    DATASETS.get(config.data.name)


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
    if ctx.is_distributed and config.model.stem_bias_epochs:
        raise UserError(
            "model.stem_bias_epochs freezes a parameter mid-run, which DistributedDataParallel "
            "cannot follow: train on one process, or set model.stem_bias_epochs=0"
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
    module = build_model_for(config.model, len(info.classes), info.image_size)
    record = describe_model(module, config.model.name, info.image_size)
    if not config.model.column_devices:  # columns stay on their own devices
        module.to(device)
    if precision.channels_last:
        module.to(memory_format=torch.channels_last)
    trials = use_kernels(module, cfg.kernels, device)
    if trials is not None and checkpoint is not None:  # resume on the paths the run took
        trials.pinned.update(checkpoint.get("kernel_choices", {}))
    data = build_run_data(config, splits, device, ctx)
    optimizer = build_optimizer(module, config.optim)
    steps = cfg.epochs * len(data.train_loader)
    every, decay = config.optim.lookahead_every, config.optim.lookahead_decay
    optimization = Optimization(
        optimizer,
        build_scheduler(optimizer, config.schedule, cfg.epochs, len(data.train_loader)),
        torch.amp.GradScaler(device.type, enabled=precision.use_grad_scaler),
        Lookahead(module, every, decay, steps) if every > 0 else None,
    )
    if checkpoint is not None:
        load_state_strict(module, checkpoint["model"], "the checkpoint")
        optimization.load_state_dict(checkpoint)
    wrapped = prepare_model(module, ctx, device, cfg.sync_batchnorm)
    if cfg.compile:
        wrapped = torch.compile(wrapped)  # type: ignore[assignment]
    return RunParts(precision, ctx, data, RunModel(module, wrapped, record), optimization)


def build_run_data(
    config: RunConfig, splits: DataSplits, device: torch.device, ctx: DistContext
) -> RunData:
    """This rank's training and validation loaders over `splits` (and, with
    train.monitor_test, a test loader for the per-epoch monitoring)."""
    cfg = config.train
    loaders = [
        build_loader(
            dataset,
            config.data,
            splits.info,
            train=dataset is splits.train,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            device=device,
            shard=ctx.shard,
        )
        for dataset in (splits.train, splits.val, splits.test if cfg.monitor_test else None)
        if dataset is not None
    ]
    val = loaders[1] if splits.val is not None else None
    monitor = loaders[-1] if cfg.monitor_test else None
    return RunData(splits, loaders[0], val, monitor)


def describe_model(model: nn.Module, name: str, image_size: int) -> ModelRecord:
    """Parameters, MACs per image and the layer table, without touching the RNG or the
    BatchNorm statistics of the run; the table is left empty if a forward pass fails."""
    input_size = [3, image_size, image_size]
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    try:
        with torch.random.fork_rng(devices=[]):
            summary = summarize(model, (3, image_size, image_size))
    except Exception as error:  # the table is informative only; never block a run on it
        log.debug("model summary failed: %s", error)
        return ModelRecord(name, input_size, params, trainable, None, [])
    layers = [
        LayerRecord(row.name, row.kind, list(row.output_shape), row.params, row.macs)
        for row in summary.rows
    ]
    return ModelRecord(name, input_size, params, trainable, summary.total_macs, layers)
