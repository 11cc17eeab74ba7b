"""Fault drills: a training process killed with SIGKILL, a disk that fills up or a run folder
that turns read-only mid-run, a restarted worker that finds its run folder, a corrupt checkpoint.
Each ends in a clear message and a run that resumes to the result of an uninterrupted one."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from classicnets.cli import main
from classicnets.config import load_config
from classicnets.errors import UserError
from classicnets.train.checkpoint import load_resume_checkpoint
from classicnets.train.loop import fit

TIMING = ("epoch_seconds", "images_per_second")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread, like the subprocesses below (OMP_NUM_THREADS=1): the same CPU
    kernels, hence bit-identical weights, and fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rows(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(run_dir / "checkpoints/last.pt", weights_only=False)["model"])


def same_weights(a: Path, b: Path) -> bool:
    first, second = weights(a), weights(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def status(run_dir: Path) -> str:
    return str(json.loads((run_dir / "summary.json").read_text())["status"])


def train_state(checkpoint: Path) -> dict[str, int] | None:
    """The progress saved in a checkpoint, or None while it does not exist yet."""
    try:
        return dict(torch.load(checkpoint, weights_only=False)["train_state"])
    except FileNotFoundError:
        return None


# --- SIGKILL mid-epoch, then --resume ----------------------------------------------------------

# 320 images: 240 train = 15 steps of 16 per epoch, saved after every step.
KILL_OVERRIDES = [
    "data.synthetic_count=320",
    "train.epochs=2",
    "train.checkpoint_every_steps=1",
    "train.run_name=killed",
]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "classicnets", *args]


def quiet_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, one_thread):
    sets = [arg for override in KILL_OVERRIDES for arg in ("--set", override)]
    command = cli("train", "--preset", "smoke", "--out", str(tmp_path), *sets)
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(
        command, env=quiet_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while (state := train_state(run_dir / "checkpoints/last.pt")) is None or state[
            "batches_done"
        ] < 3:
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no mid-epoch checkpoint within 2 minutes"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    saved, _ = load_resume_checkpoint(run_dir)
    assert saved["train_state"]["epochs_done"] == 0 and saved["train_state"]["batches_done"] >= 3
    assert status(run_dir) == "running"  # what a kill leaves behind

    resumed = subprocess.run(
        cli("train", "--resume", str(run_dir)), env=quiet_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    reference = fit(load_config("smoke", KILL_OVERRIDES), tmp_path / "reference")
    assert rows(run_dir) == rows(reference)
    assert same_weights(run_dir, reference)
    assert status(run_dir) == "complete"


# --- a full disk or a read-only run folder mid-run --------------------------------------------

# torch kernels: a fresh reference run must not re-time a layer and pick the other path,
# which differs from the faulted run in rounding (kernel choice per run: see issue notes).
FAULT_OVERRIDES = ["train.epochs=2", "train.checkpoint_every_steps=1", "train.kernels=torch"]


def _fill_disk_on_checkpoint(monkeypatch: pytest.MonkeyPatch, failing_save: int) -> list[int]:
    """torch.save writes a few bytes, then raises ENOSPC, from the `failing_save`-th call on.

    Returns the global steps of the last.pt saves that succeeded, in order.
    """
    real_save, calls, saved_steps = torch.save, [0], []

    def save(state: object, file: object, *args: object, **kwargs: object) -> None:
        calls[0] += 1
        if calls[0] >= failing_save:
            file.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(state, file, *args, **kwargs)  # type: ignore[arg-type]
        if isinstance(state, dict) and "train_state" in state:
            saved_steps.append(state["train_state"]["global_step"])

    monkeypatch.setattr(torch, "save", save)
    return saved_steps


def _make_folder_read_only(monkeypatch: pytest.MonkeyPatch, failing_write: int) -> list[int]:
    """From the `failing_write`-th fsync on, every write fails as on a read-only file system
    (we run as root, so chmod would not stop writes)."""
    real_fsync, calls = os.fsync, [0]

    def fsync(descriptor: int) -> None:
        calls[0] += 1
        if calls[0] >= failing_write:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    return []


@pytest.mark.parametrize(
    ("fault", "nth", "message"),
    [
        (_fill_disk_on_checkpoint, 5, "No space left on device; the previous copy is intact"),
        (_make_folder_read_only, 8, "Read-only file system; the previous copy is intact"),
        (_make_folder_read_only, 12, "metrics.jsonl: Read-only file system"),
    ],
    ids=["disk-full-on-checkpoint", "read-only-on-checkpoint", "read-only-on-metrics"],
)
def test_write_failure_mid_run_stops_clearly_and_keeps_the_last_good_checkpoint(
    tmp_path, capsys, monkeypatch, one_thread, fault, nth, message
):
    sets = [arg for override in FAULT_OVERRIDES for arg in ("--set", override)]
    saved_steps = fault(monkeypatch, nth)
    code = main(["train", "--preset", "smoke", "--out", str(tmp_path / "runs"), *sets])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    last_line = err.splitlines()[-1]  # after the run's log lines
    assert code == 2 and message in last_line and "Traceback" not in err
    assert last_line.startswith("classicnets: error: cannot write")
    (run_dir,) = (tmp_path / "runs").iterdir()
    checkpoint, path = load_resume_checkpoint(run_dir)
    assert path.name == "last.pt"  # intact: no fallback needed
    if saved_steps:
        assert checkpoint["train_state"]["global_step"] == saved_steps[-1]
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if ".tmp" in p.name]
    assert leftovers == []
    if fault is _fill_disk_on_checkpoint:
        assert status(run_dir) == "failed"  # summary.json could still be written
    resumed = fit(load_config("smoke", FAULT_OVERRIDES), resume=run_dir)
    reference = fit(load_config("smoke", FAULT_OVERRIDES), tmp_path / "reference")
    assert rows(resumed) == rows(reference) and same_weights(resumed, reference)


# --- a fixed train.run_name: what a restarted torchrun worker relies on -----------------------


def test_fixed_run_name_resumes_its_own_run_and_refuses_another(tmp_path, one_thread):
    config = load_config("smoke", ["train.epochs=2", "train.run_name=job"])
    reference = fit(config, tmp_path / "reference")
    stopped = fit(config, tmp_path, stop_after_steps=4)  # the worker dies mid-epoch 2
    assert stopped == tmp_path / "job" and status(stopped) == "interrupted"
    restarted = fit(config, tmp_path)  # the same command again
    assert restarted == stopped and status(restarted) == "complete"
    assert rows(restarted) == rows(reference) and same_weights(restarted, reference)
    finished = (restarted / "summary.json").stat().st_mtime_ns
    assert fit(config, tmp_path) == restarted  # complete: nothing to do
    assert (restarted / "summary.json").stat().st_mtime_ns == finished
    other = load_config("smoke", ["train.epochs=2", "train.run_name=job", "optim.lr=0.5"])
    with pytest.raises(UserError, match="holds a run with another config"):
        fit(other, tmp_path)


def test_fixed_run_name_starts_over_when_killed_before_its_first_checkpoint(tmp_path, one_thread):
    config = load_config("smoke", ["train.run_name=job"])
    run_dir = fit(config, tmp_path)
    for name in ("checkpoints", "eval"):
        for path in sorted((run_dir / name).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    (run_dir / "summary.json").write_text('{"status": "running"}')
    # what a SIGKILL leaves: the lock file of a process that is gone
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run_dir / ".lock").write_text(json.dumps({"pid": dead.pid, "host": "here"}))
    assert status(fit(config, tmp_path)) == "complete"
    assert (run_dir / "checkpoints/last.pt").is_file()


# --- checkpoint corruption that loading cannot see ---------------------------------------------


def test_a_flipped_byte_in_last_pt_is_detected(tmp_path, one_thread):
    keep_all = "train.keep_optimizer_state=true"  # previous.pt stays after the run
    run_dir = fit(load_config("smoke", ["train.epochs=2", keep_all]), tmp_path)
    last = run_dir / "checkpoints/last.pt"
    data = bytearray(last.read_bytes())
    weight = torch.load(last, weights_only=False)["model"]["classifier.weight"]
    index = data.find(weight.numpy().tobytes()[:64])  # the stored bytes of that tensor
    assert index > 0
    data[index + 8] ^= 0xFF
    last.write_bytes(bytes(data))
    _, path = load_resume_checkpoint(run_dir)
    assert path.name == "previous.pt"
