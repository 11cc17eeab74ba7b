"""The typed records of a run folder, one dataclass per file (docs/run-folder.md lists each
field; tests/test_run_record.py checks that every field is documented there).

Accuracies are percentages. Fields that a folder from an older version, a run still going or
a hand edit may lack have a fallback (a default, or None), so readers never fail on them.
"""

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Literal

# How a report writes a value: a number with `digits` decimals, a count with thousands
# separators, a learning rate (3 significant digits), or multiply-accumulates (G/M).
Style = Literal["number", "count", "lr", "macs"]


def shown(label: str, style: Style = "number", digits: int = 2, default: Any = MISSING) -> Any:
    """A record field that reports show, under `label`: the one place a metric is declared
    for the run report's tables (docs/architecture.md, "add a report metric")."""
    metadata = {"label": label, "style": style, "digits": digits}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def shown_fields(record: type) -> list["Field[Any]"]:
    """The fields of a record class that reports show, in declaration order."""
    return [spec for spec in fields(record) if "label" in spec.metadata]


MONITOR_FIELDS = ("monitor_test_loss", "monitor_test_top1")


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch: a line of metrics.jsonl and a row of metrics.csv."""

    epoch: int = shown("epoch", "count")
    lr: float = shown("lr (first step)", "lr")
    train_loss: float = shown("train loss", digits=4)
    train_top1: float = shown("train top-1")
    val_loss: float | None = shown("val loss", digits=4)  # None without a validation split
    val_top1: float | None = shown("val top-1")
    val_top5: float | None = shown("val top-5")
    epoch_seconds: float = shown("seconds", digits=1)
    images_per_second: float = shown("images/s", digits=1)
    # train.monitor_test: the test split after this epoch; test-set monitoring only, which
    # nothing selects, stops or schedules on (close_epoch reads val_top1 alone).
    monitor_test_loss: float | None = shown("test loss (monitoring)", digits=4, default=None)
    monitor_test_top1: float | None = shown("test top-1 (monitoring)", default=None)

    def to_dict(self) -> dict[str, Any]:
        # The monitoring fields appear only in runs that asked for them (train.monitor_test).
        return {
            name: getattr(self, name)
            for name in self.field_names()
            if not (name in MONITOR_FIELDS and getattr(self, name) is None)
        }

    @classmethod
    def field_names(cls) -> list[str]:
        return [spec.name for spec in fields(cls)]

    def summary_line(self) -> str:
        val = (
            ""
            if self.val_top1 is None
            else (
                f" | val loss {self.val_loss:.4f} top1 {self.val_top1:.2f}%"
                f" top5 {self.val_top5:.2f}%"
            )
        )
        monitor = (
            ""
            if self.monitor_test_top1 is None
            else f" | test top1 {self.monitor_test_top1:.2f}% (monitoring)"
        )
        return (
            f"epoch {self.epoch} | lr {self.lr:.3g} | train loss {self.train_loss:.4f} "
            f"top1 {self.train_top1:.2f}%{val}{monitor} | {self.epoch_seconds:.1f}s "
            f"{self.images_per_second:.0f} img/s"
        )


@dataclass(frozen=True)
class StepRecord:
    """The training loss and learning rate at one log step: a line of steps.jsonl."""

    step: int  # optimizer steps since the run began
    epoch: int
    lr: float  # after this step's schedule update
    train_loss: float  # mean over the steps since the previous line of the same epoch


@dataclass(frozen=True)
class Summary:
    """summary.json: written when training starts and rewritten at its end."""

    status: str = "unknown"  # running | complete | interrupted | failed
    model: str = "?"
    dataset: str = "?"
    num_classes: int | None = None
    classes: list[str] = field(default_factory=list)
    params: int | None = shown("parameters", "count", default=None)
    macs: int | None = shown("MACs per image", "macs", default=None)  # multiply-accumulates
    input_size: list[int] = field(default_factory=list)  # [C, H, W]
    epochs: int | None = None  # epochs finished
    epochs_planned: int | None = None
    best_top1: float | None = None  # best val top-1
    best_epoch: int | None = None
    last_top1: float | None = None  # val top-1 of the last epoch
    test_top1: float | None = None
    test_top5: float | None = None
    test_loss: float | None = None
    wall_seconds: float | None = None
    seed: int | None = None
    images_per_second: float | None = None  # mean training throughput


@dataclass(frozen=True)
class Environment:
    """env.json: where and with what code a run was made."""

    command: list[str] = field(default_factory=list)
    git_commit: str | None = None
    git_dirty: bool | None = None
    python: str = "?"
    torch: str = "?"
    torchvision: str = "?"
    cuda: str | None = None
    device: str = "?"
    device_name: str = "?"
    precision: str | None = None  # fp32, bf16 or fp16 (absent in older runs)
    cpu_threads: int | None = None
    thp_mem_alloc: str | None = None  # THP_MEM_ALLOC_ENABLE as the run saw it
    malloc: str | None = None  # what classicnets.allocator did to glibc malloc
    hostname: str = "?"
    platform: str = "?"
    started: str = "?"  # ISO time


@dataclass(frozen=True)
class EvalMetrics:
    """eval/<split>[-<tta>]/metrics.json: one model scored on one split."""

    split: str = "?"
    tta: str = "?"
    count: int | None = shown("images", "count", default=None)
    loss: float | None = shown("loss", digits=4, default=None)
    top1: float | None = shown("top-1 (%)", default=None)
    top5: float | None = shown("top-5 (%)", default=None)
    error_top1: float | None = shown("error top-1 (%)", default=None)
    error_top5: float | None = None
    correct: int | None = shown("correct", "count", default=None)
    incorrect: int | None = shown("incorrect", "count", default=None)
    classes: list[str] = field(default_factory=list)
    per_class_top1: list[float] = field(default_factory=list)
    per_class_count: list[int] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)  # rows = true class


@dataclass(frozen=True)
class LayerRecord:
    """One row of the model's layer table (a leaf module, in call order)."""

    name: str  # dotted path, e.g. features.0
    kind: str  # class name, e.g. Conv2d
    output_shape: list[int]  # without the batch dimension
    params: int
    macs: int


@dataclass(frozen=True)
class ModelRecord:
    """model.json: the model as trained, tabulated once so reports never rebuild it."""

    name: str = "?"
    input_size: list[int] = field(default_factory=list)  # [C, H, W]
    params: int | None = None
    trainable_params: int | None = None
    macs: int | None = None
    layers: list[LayerRecord] = field(default_factory=list)
