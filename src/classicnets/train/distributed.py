"""Data-parallel training over the processes torchrun starts: PyTorch DistributedDataParallel
(Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel Training",
arXiv:2006.15704), NCCL between CUDA devices and gloo between CPU processes.

The rules the engine follows (docs/scaling.md explains them for users):
- train.batch_size is the GLOBAL batch; each rank takes its slice of every global batch
  (data.loaders.Shard), so N ranks see the samples and augmentations of one process.
- each rank's mean loss is weighted by its share of the global batch, so DDP's gradient
  average is the gradient of the mean loss over the global batch, even for uneven slices.
- metrics are sums added over ranks; evaluation shards score every sample exactly once.
- rank 0 alone writes the run folder and checkpoints; every rank reads a checkpoint to resume.
Without torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK) everything here is a no-op.
"""

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import PrefixStore, Store  # type: ignore[attr-defined]
from torch.distributed.rendezvous import rendezvous
from torch.nn.parallel import DistributedDataParallel

from classicnets.config import TrainConfig
from classicnets.data.memory_loader import Shard
from classicnets.device import pick_device
from classicnets.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Which process this is among the ranks of a data-parallel run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the rank on this machine, which picks the CUDA device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run folder, logs and checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world_size)


SINGLE_PROCESS = DistContext()


def context_from_env(env: Mapping[str, str] = os.environ) -> DistContext:
    """The rank torchrun gave this process (RANK, WORLD_SIZE, LOCAL_RANK), else one process."""
    if "WORLD_SIZE" not in env:
        return SINGLE_PROCESS
    try:
        world_size = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UserError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers (set them with torchrun)"
        ) from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise UserError(f"RANK={rank} is not a rank of WORLD_SIZE={world_size}")
    return DistContext(rank, world_size, local_rank)


def is_main_process(env: Mapping[str, str] = os.environ) -> bool:
    """False in torchrun's ranks other than 0, which must not write or print results."""
    return context_from_env(env).is_main


@contextmanager
def distributed_session(cfg: TrainConfig) -> Iterator[DistContext]:
    """Join the process group of a torchrun launch for the duration of a run.

    In one process (no WORLD_SIZE > 1) this yields SINGLE_PROCESS and does nothing. A group
    that the caller already set up is used as it is. On an error the group is left for the
    process exit to tear down, since destroying it while other ranks wait can block.
    """
    ctx = context_from_env()
    if not ctx.is_distributed or dist.is_initialized():
        yield ctx
        return
    device = rank_device(pick_device(cfg.device), ctx)
    backend = pick_backend(cfg.dist_backend, device)
    dist.init_process_group(
        backend,
        store=_attempt_store(),
        rank=ctx.rank,
        world_size=ctx.world_size,
        device_id=device if device.type == "cuda" else None,
    )
    package_log = logging.getLogger("classicnets")
    level = package_log.level
    if not ctx.is_main:  # one rank speaks for the run
        package_log.setLevel(logging.WARNING)
    log.info("rank %d of %d (%s on %s)", ctx.rank, ctx.world_size, backend, device)
    yield ctx
    barrier(ctx)  # no rank returns before rank 0 has written the end of the run
    package_log.setLevel(level)
    dist.destroy_process_group()


def _attempt_store() -> Store:
    """The env:// rendezvous store, with keys private to this attempt of the worker group.

    torchrun --max-restarts keeps its store across restarts; without the prefix, restarted
    ranks read the dead ranks' gloo addresses from it and fail to connect.
    """
    store, _, _ = next(rendezvous("env://"))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return PrefixStore(f"classicnets/attempt-{attempt}/", store)


def rank_device(device: torch.device, ctx: DistContext) -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK on CUDA machines, the CPU otherwise."""
    if not ctx.is_distributed:
        return device
    if device.type == "mps":
        raise UserError(
            "data-parallel training runs on CUDA (nccl) or CPU (gloo); an MPS machine has one "
            "device: run one process without torchrun"
        )
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise UserError(
            f"train.device={device} under torchrun: rank r uses cuda:LOCAL_RANK; "
            "set train.device=cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    if ctx.local_rank >= torch.cuda.device_count():
        raise UserError(
            f"LOCAL_RANK={ctx.local_rank} but this machine shows {torch.cuda.device_count()} "
            "CUDA devices; start at most that many processes per node"
        )
    device = torch.device("cuda", ctx.local_rank)
    torch.cuda.set_device(device)
    return device


def pick_backend(name: str, device: torch.device) -> str:
    """train.dist_backend: auto is NCCL between CUDA devices and gloo between CPU processes."""
    backend = name if name != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and (device.type != "cuda" or not dist.is_nccl_available()):
        raise UserError("train.dist_backend=nccl needs CUDA devices; use gloo (or auto) on CPU")
    return backend


def prepare_model(
    model: nn.Module, ctx: DistContext, device: torch.device, sync_batchnorm: bool
) -> nn.Module:
    """`model` (already on `device`) wrapped for data-parallel training; itself in one process.

    DistributedDataParallel broadcasts rank 0's weights when it is built and averages the
    gradients over ranks in backward. With sync_batchnorm, BatchNorm normalises with the
    statistics of the global batch rather than of each rank's slice.
    """
    if not ctx.is_distributed:
        if sync_batchnorm:
            log.info("train.sync_batchnorm has no effect in a single process")
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise UserError(
                "train.sync_batchnorm needs CUDA ranks (PyTorch's SyncBatchNorm has no CPU "
                "kernel); drop it for gloo/CPU runs"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def rank_loss(
    loss: torch.Tensor, rank_count: int, global_count: int, world_size: int
) -> torch.Tensor:
    """This rank's mean loss, weighted so that DDP's average over ranks of the gradients is the
    gradient of the mean loss over the global batch of `global_count` samples.

    The average is (1/N) sum_r w_r mean_r; with w_r = n_r N / B it is (1/B) sum_i loss_i.
    A rank without samples (mean_r is NaN) gets w_r = 0: zero gradients, and it still takes
    part in the gradient all-reduce that every rank must join.
    """
    if rank_count * world_size == global_count:
        return loss
    if rank_count == 0:
        return torch.nan_to_num(loss, nan=0.0) * 0.0
    return loss * (rank_count * world_size / global_count)


def global_batch_count(batch_size: int, num_samples: int, batch: int) -> int:
    """Samples in global batch `batch` of an epoch (the last one may be short)."""
    return max(0, min(batch_size, num_samples - batch * batch_size))


def sum_across(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """`values` added up over all ranks, in place (unchanged in one process)."""
    if ctx.is_distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_from_main(value: T, ctx: DistContext) -> T:
    """Rank 0's `value` on every rank (e.g. the run folder it created)."""
    if not ctx.is_distributed:
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[no-any-return]


def gather_all(value: T, ctx: DistContext) -> list[T]:
    """Every rank's `value`, in rank order, on every rank."""
    if not ctx.is_distributed:
        return [value]
    values: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def gather_to_main(value: T, ctx: DistContext) -> list[T] | None:
    """Every rank's `value`, in rank order, on rank 0; None on the other ranks."""
    if not ctx.is_distributed:
        return [value]
    values: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(value, values, dst=0)
    return values


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank before evaluating.

    DDP broadcasts them at the start of each training forward, so after the last step each
    rank holds rank 0's statistics plus its own last update; rank 0's are the saved ones.
    """
    if ctx.is_distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier(ctx: DistContext) -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written best.pt)."""
    if ctx.is_distributed:
        dist.barrier()
