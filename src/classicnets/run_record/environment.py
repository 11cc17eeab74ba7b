"""The Environment record's contents, gathered from the running process (env.json)."""

import os
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import torch

from classicnets import allocator
from classicnets.run_record.records import Environment


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


def collect_environment(
    device: torch.device, precision: str, command: Sequence[str]
) -> Environment:
    """Versions, device, precision (fp32, bf16 or fp16) and code revision, for env.json."""
    import torchvision

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return Environment(
        command=list(command),
        git_commit=commit,
        git_dirty=bool(status) if status is not None else None,
        python=sys.version.split()[0],
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        cuda=torch.version.cuda,
        device=str(device),
        device_name=device_name,
        precision=precision,
        cpu_threads=torch.get_num_threads(),
        thp_mem_alloc=os.environ.get("THP_MEM_ALLOC_ENABLE"),
        malloc=allocator.malloc_setting(),
        hostname=socket.gethostname(),
        platform=platform.platform(),
        started=datetime.now().isoformat(timespec="seconds"),
    )
