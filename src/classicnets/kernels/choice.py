"""Which path each fast layer takes, decided by timing it against torch's own where it runs.

As `torch.backends.cudnn.benchmark` does for convolutions: the first time a layer meets an
input shape (with its dtype, memory layout, autocast dtype and grad mode), a short trial runs
the layer's forward and backward every way it has (torch's own and one or more named fast
paths) on random data of that shape and keeps the fastest.
The outcome is cached per machine (CPU model and ISA flags or GPU name, torch version, torch
threads) in `$XDG_CACHE_HOME/classicnets/` (default `~/.cache/classicnets/`), so later runs on
the same machine skip the trial, and a cache written on another machine is never read. A trial
runs under `torch.random.fork_rng` and takes gradients with `torch.autograd.grad`, so it leaves
the random streams and the parameters' `.grad` as they were: training is unchanged by it.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from classicnets.atomic import atomic_write_text

CACHE_FORMAT = 2  # 2: choices are path names (1 had only "fast" and "torch")
TRIAL_ROUNDS = 3  # alternating timed calls of each path; the fastest of each counts
TORCH = "torch"  # the name of torch's own path in every trial

Timer = Callable[[str, Callable[[], None]], float]
Forward = Callable[[torch.Tensor], torch.Tensor]
Paths = dict[str, Forward]  # a layer's ways to compute, by name


def time_call(path: str, run: Callable[[], None]) -> float:
    """Seconds one call of `run` takes (`path`, the path's name, is for test timers)."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def cpu_flags() -> str:
    """The ISA flags line of /proc/cpuinfo (Linux), else what platform knows."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    return platform.processor()


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_fingerprint(device: torch.device) -> dict[str, Any]:
    """What a timing depends on besides the layer: the hardware, torch and its threads."""
    fingerprint: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device.type,
    }
    if device.type == "cuda":
        fingerprint["gpu"] = torch.cuda.get_device_name(device)
        fingerprint["cudnn"] = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
    return fingerprint


def cache_folder() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "classicnets"


@dataclass
class KernelTrials:
    """The choices made on one machine, backed by its cache file (None: kept in memory)."""

    machine: dict[str, Any]
    path: Path | None
    timer: Timer = time_call
    choices: dict[str, str] = field(default_factory=dict)
    # A resumed run's own choices (from its checkpoint), taken before any trial or cache: the
    # paths differ in rounding and Dropout's in its random stream, so a run resumed with other
    # choices (a cleared cache, other threads, another machine) would not continue bit-exactly.
    pinned: dict[str, str] = field(default_factory=dict)
    used: dict[str, str] = field(default_factory=dict)  # what this process chose, for checkpoints

    @classmethod
    def for_machine(cls, device: torch.device, timer: Timer = time_call) -> "KernelTrials":
        machine = machine_fingerprint(device)
        digest = hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:16]
        return cls(machine, cache_folder() / f"kernels-{digest}.json", timer)

    def choose(self, key: str, measure: Callable[[Timer], str], names: Iterable[str]) -> str:
        """The path (one of `names`) that won `key`'s trial; runs the trial once per machine,
        and again if the recorded winner is no longer one of the layer's paths."""
        names = set(names)
        if self.pinned.get(key) in names:
            self.used[key] = self.pinned[key]
            return self.pinned[key]
        if self.choices.get(key) not in names:
            with self._locked():  # ranks of one machine measure once and share the outcome
                self.choices.update(self._read())
                if self.choices.get(key) not in names:
                    self.choices[key] = measure(self.timer)
                    self._write()
        self.used[key] = self.choices[key]
        return self.choices[key]

    def known(self, key: str) -> str | None:
        """The path already decided for `key` (pinned, else measured), without a trial."""
        return self.pinned.get(key) or self.choices.get(key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path.with_suffix(".lock"), "a")  # noqa: SIM115 (held while locked)
        except OSError:  # a read-only cache folder: measure in memory only
            self.path = None
            yield
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _read(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: measure again
        if not isinstance(stored, dict) or stored.get("machine") != self.machine:
            return {}  # another machine's (or format's) timings say nothing about this one
        choices = stored.get("choices")
        if stored.get("format") != CACHE_FORMAT or not isinstance(choices, dict):
            return {}
        return {str(k): v for k, v in choices.items() if isinstance(v, str)}

    def _write(self) -> None:
        if self.path is None:
            return
        record = {"format": CACHE_FORMAT, "machine": self.machine, "choices": self.choices}
        try:
            atomic_write_text(self.path, json.dumps(record, indent=1, sort_keys=True) + "\n")
        except Exception:  # a full or read-only disk costs a trial next time, nothing else
            self.path = None


def is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


def layer_key(layer: nn.Module, x: torch.Tensor) -> str:
    """The layer and everything about its input that its speed depends on."""
    layout = "channels_last" if is_channels_last(x) and not x.is_contiguous() else "contiguous"
    autocast = (
        str(torch.get_autocast_dtype(x.device.type))
        if torch.is_autocast_enabled(x.device.type)
        else "off"
    )
    grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in layer.parameters())
    )
    return (
        f"{type(layer).__name__}({layer.extra_repr()}) train={layer.training} "
        f"input={tuple(x.shape)} {x.dtype} {layout} autocast={autocast} grad={grad} "
        f"device={x.device.type}"
    )


def trial(layer: nn.Module, x: torch.Tensor, paths: Paths) -> Callable[[Timer], str]:
    """A measurement of every path on random data shaped like `x`: the fastest one's name
    (torch's on a tie)."""

    def measure(timer: Timer) -> str:
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            generator = torch.Generator(x.device).manual_seed(0)
            data = torch.randn(x.shape, generator=generator, device=x.device).to(x.dtype)
            if is_channels_last(x):
                data = data.contiguous(memory_format=torch.channels_last)
            data.requires_grad_(x.requires_grad and torch.is_grad_enabled())
            wanted = [data] if data.requires_grad else []
            wanted += [p for p in layer.parameters() if p.requires_grad]
            runs = {name: _step(forward, data, wanted) for name, forward in paths.items()}
            for run in runs.values():  # warm-up: first calls allocate and pick kernels
                run()
            best = {name: float("inf") for name in runs}
            for _ in range(TRIAL_ROUNDS):
                for name, run in runs.items():
                    best[name] = min(best[name], timer(name, run))
        return min(best, key=lambda name: (best[name], name != TORCH))

    return measure


def _step(forward: Forward, data: torch.Tensor, wanted: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        out = forward(data)
        if wanted and torch.is_grad_enabled() and out.requires_grad:
            # autograd.grad, not backward(): the parameters' .grad stay untouched
            torch.autograd.grad(out, wanted, torch.ones_like(out), allow_unused=True)
        if data.device.type == "cuda":
            torch.cuda.synchronize(data.device)

    return run


def chosen_forward(
    layer: nn.Module, x: torch.Tensor, fast: Forward | Paths, stock: Forward
) -> torch.Tensor:
    """`x` through the path that won its trial on this machine: `fast` (one path, named
    "fast", or several by name) or `stock`, torch's own.

    Without trials attached (`use_kernels`), and while torch.compile traces, torch's own path.
    """
    trials = getattr(layer, "kernel_trials", None)
    if not isinstance(trials, KernelTrials) or torch.compiler.is_compiling():
        return stock(x)
    paths = {"fast": fast} if callable(fast) else dict(fast)
    paths[TORCH] = stock
    key = layer_key(layer, x)
    if _get_current_dispatch_mode() is not None:
        # Under a dispatch mode (FlopCounterMode, a tracer) a trial would be timed through
        # the mode and counted by it: take the choice already made, else torch's, untried.
        return paths.get(trials.known(key) or TORCH, stock)(x)
    return paths[trials.choose(key, trial(layer, x, paths), paths)](x)
