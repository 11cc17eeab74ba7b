"""The run folder: everything needed to rebuild a run (config, environment, metrics, summary).

Layout (also documented in docs/run-folder.md): config.yaml, env.json, metrics.jsonl,
metrics.csv, checkpoints/{last,previous,best}.pt, summary.json, eval/<split>[-<tta>]/.
"""

import csv
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

import classicnets
from classicnets.atomic import atomic_write_text
from classicnets.config import RunConfig, TrainConfig, config_from_dict, read_yaml
from classicnets.errors import UserError
from classicnets.evaluate.metrics import EpochRecord


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


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for env.json and the benchmarks."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(device: torch.device, precision: str, command: Sequence[str]) -> dict[str, Any]:
    """Versions, device, precision (fp32, bf16 or fp16) and code revision, saved as env.json."""
    import torchvision

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "command": list(command),
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name,
        "precision": precision,
        "cpu_threads": torch.get_num_threads(),
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "malloc": classicnets.MALLOC,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


class MetricsLog:
    """metrics.jsonl (one line per epoch, appended) and metrics.csv (rewritten) in a run."""

    def __init__(self, run_dir: Path, history: Sequence[dict[str, Any]] = ()) -> None:
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.rows: list[dict[str, Any]] = list(history)
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


class Stopwatch:
    """Wall-clock seconds that first wait for queued GPU work, so timings are honest."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self.now()

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()
        return time.perf_counter()

    def elapsed(self) -> float:
        return self.now() - self.start


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


def log_tensorboard(writer: Any, record: EpochRecord) -> None:
    for name, value in record.to_dict().items():
        if name != "epoch" and value is not None:
            writer.add_scalar(name, value, record.epoch)


def load_run_config(run_dir: Path) -> RunConfig:
    """The resolved config saved in a run folder."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.yaml)")
    return config_from_dict(read_yaml(path))
