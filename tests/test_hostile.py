"""Hostile but realistic input through the command line: crafted checkpoints, random bytes,
real faults. Each ends in one line and the documented exit code, and nothing runs code from
a file or loses a run."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_zoo import make_imagenet

from classicnets.cli import main
from classicnets.config import load_config
from classicnets.errors import UserError
from classicnets.train.checkpoint import load_checkpoint, load_resume_checkpoint, save_checkpoint
from classicnets.train.loop import fit


class CreatesMarker:
    """Unpickling this calls os.system: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # every checkpoint file kept, so that each can be planted
    config = load_config("smoke", ["train.keep_optimizer_state=true"])
    return fit(config, tmp_path_factory.mktemp("runs"))


KEEP_ALL = "train.keep_optimizer_state=true"  # a complete run keeps previous.pt too


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "loading a checkpoint ran code from it"


def plant(path: Path, marker: Path) -> Path:
    """A checkpoint that looks like ours (real weights, the old NumPy RNG) plus the payload."""
    state = {
        "model": {"w": torch.zeros(2)},
        "rng": np.random.get_state(),
        "x": CreatesMarker(marker),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_the_planted_payload_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    """Keeps the tests below honest: this file does run code under weights_only=False."""
    marker = tmp_path / "code-ran"
    torch.load(plant(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


def planted_run(run_dir: Path, tmp_path: Path, marker: Path) -> Path:
    copy = Path(shutil.copytree(run_dir, tmp_path / "planted"))
    for name in ("best.pt", "last.pt", "previous.pt"):
        plant(copy / "checkpoints" / name, marker)
    return copy


def image(tmp_path: Path) -> Path:
    path = tmp_path / "cat.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(path)
    return path


ENTRY_POINTS = {
    "evaluate-run": lambda run, evil, tmp: ["evaluate", str(run)],
    "evaluate-file": lambda run, evil, tmp: ["evaluate", str(evil)],
    "predict": lambda run, evil, tmp: ["predict", str(evil), str(image(tmp))],
    "resume": lambda run, evil, tmp: ["train", "--resume", str(run)],
    "model.weights": lambda run, evil, tmp: [
        "train", "--preset", "smoke", "--out", str(tmp / "out"), "--set", f"model.weights={evil}"
    ],
    "report": lambda run, evil, tmp: ["report", str(run)],
    "compare": lambda run, evil, tmp: ["compare", str(run), str(run), "--out", str(tmp / "cmp")],
}  # fmt: skip


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_code_carrying_checkpoint_is_never_unpickled(
    run_dir: Path, tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture[str], entry: str
) -> None:
    planted = planted_run(run_dir, tmp_path, marker)
    evil = planted / "checkpoints/best.pt"
    code = main(ENTRY_POINTS[entry](planted, evil, tmp_path))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if entry in ("report", "compare"):  # a report notes the unreadable checkpoint and goes on
        assert code == 0
    else:
        assert code == 2
        assert err.strip().splitlines()[-1].startswith("classicnets: error: ")
    if entry in ("evaluate-run", "evaluate-file", "predict", "resume"):
        assert "refusing to load" in err and "posix.system" in err


def test_zoo_weights_refuse_a_code_carrying_file(
    tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imagenet = make_imagenet(tmp_path / "imagenet")
    evil = plant(tmp_path / "evil.pth", marker)
    args = ["zoo", "evaluate", "alexnet", "--weights", str(evil), "--set", f"data.root={imagenet}"]
    assert main([*args, "--set", "data.num_workers=0", "--out", str(tmp_path / "zoo")]) == 2
    assert "--weights" in capsys.readouterr().err


def test_checkpoints_load_with_the_plain_safe_loader_and_restore_every_rng(run_dir: Path) -> None:
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)  # no allow-list
    assert set(state["rng"]) >= {"python", "numpy", "torch"}
    decoded = load_checkpoint(run_dir / "checkpoints/last.pt")["rng"]
    np.random.set_state(decoded["numpy"])
    expected = np.random.rand(3)
    np.random.set_state(decoded["numpy"])
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_an_old_format_checkpoint_still_resumes_through_the_safe_loader(tmp_path: Path) -> None:
    """Checkpoints from before the encoding hold NumPy's RNG state as an array."""
    config = load_config("smoke", ["train.epochs=2"])
    whole = fit(config, tmp_path / "whole")
    broken = fit(config, tmp_path / "broken", stop_after_steps=5)
    last = broken / "checkpoints/last.pt"
    state = load_checkpoint(last)
    assert isinstance(state["rng"]["numpy"][1], np.ndarray)
    torch.save(state, last)  # as the old code wrote it
    with pytest.raises(Exception, match="numpy"):
        torch.load(last, weights_only=True)
    fit(config, resume=broken)
    assert torch.equal(
        load_checkpoint(whole / "checkpoints/last.pt")["model"]["classifier.weight"],
        load_checkpoint(last)["model"]["classifier.weight"],
    )


def test_random_bytes_as_last_pt_fall_back_to_previous(tmp_path: Path) -> None:
    run = fit(load_config("smoke", ["train.epochs=2", KEEP_ALL]), tmp_path)  # previous.pt kept
    (run / "checkpoints/last.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    _, path = load_resume_checkpoint(run)
    assert path.name == "previous.pt"


def test_a_resume_refuses_a_code_carrying_last_pt_even_with_a_good_previous(
    tmp_path: Path, marker: Path
) -> None:
    run = fit(load_config("smoke", ["train.epochs=2", KEEP_ALL]), tmp_path)
    plant(run / "checkpoints/last.pt", marker)
    assert main(["train", "--resume", str(run)]) == 2


def test_a_saved_numpy_array_comes_back_as_the_same_array(tmp_path: Path) -> None:
    array = np.arange(5, dtype=np.uint32) * 1_000_000_000
    save_checkpoint({"model": {}, "a": array, "s": np.float64(0.5)}, tmp_path / "a.pt")
    state = load_checkpoint(tmp_path / "a.pt")
    assert state["a"].dtype == np.uint32 and np.array_equal(state["a"], array)
    assert state["s"] == 0.5 and type(state["s"]) is float


# --- real faults: a full disk and a folder turning read-only, on a small tmpfs -----------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of our own (we run as root in CI); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8); the faults are faked elsewhere")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Take all but 200 kB of `disk`: the next checkpoint (700 kB) starts, then runs out."""
    with (disk / "filler").open("wb", buffering=0) as file:
        for block in (65536, 512):  # then the last partial page
            with contextlib.suppress(OSError):
                while True:
                    file.write(b"\0" * block)
        file.truncate(file.tell() - 200_000)


def remount_read_only(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, capture_output=True)


@pytest.mark.parametrize("fault", [fill, remount_read_only], ids=["disk-full", "read-only"])
def test_a_real_fault_mid_run_is_one_line_and_keeps_last_pt(
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fault: object,
) -> None:
    """Just before the fourth checkpoint save the disk really is full (or read-only)."""
    from classicnets.train import run as loop_module  # where the loop saves checkpoints

    real_save, calls = loop_module.save_checkpoint, [0]

    def save_after_fault(*args: object, **kwargs: object) -> None:
        calls[0] += 1
        if calls[0] == 4:
            fault(small_disk)  # type: ignore[operator]
        real_save(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop_module, "save_checkpoint", save_after_fault)
    sets = ["--set", "train.epochs=2", "--set", "train.checkpoint_every_steps=1"]
    code = main(["train", "--preset", "smoke", "--out", str(small_disk), *sets])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err, err
    reason = "No space left on device" if fault is fill else "Read-only file system"
    assert err.splitlines()[-1].startswith("classicnets: error: cannot write")
    assert reason in err.splitlines()[-1]
    (run,) = [p for p in small_disk.iterdir() if p.is_dir()]
    saved, path = load_resume_checkpoint(run)
    assert path.name == "last.pt" and saved["train_state"]["global_step"] == 3


# --- numbers that pass the type check but not the sense check ----------------------------------

OUT_OF_RANGE = [
    "train.seed=1e20",
    "train.seed=-1",
    "train.seed=18446744073709551616",
    "optim.lr=.nan",
    "optim.lr=.inf",
    "optim.momentum=-0.5",
    "optim.weight_decay=-1.0",
    "schedule.pct_start=1.5",
    "train.label_smoothing=1.5",
    "train.log_every_steps=0",
    "train.epochs=0",
    "train.epochs=-3",
    "model.dropout=1.0",
    "schedule.milestones=[3,-1]",
]


@pytest.mark.parametrize("override", OUT_OF_RANGE)
def test_an_out_of_range_number_is_refused_in_one_line_before_anything_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str
) -> None:
    out = tmp_path / "runs"
    assert main(["train", "--preset", "smoke", "--out", str(out), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and override.split("=")[0] in err, err
    assert not out.exists()


def test_every_numeric_config_field_has_a_range() -> None:
    from classicnets.config import RunConfig
    from classicnets.config_ranges import RANGES, numeric_fields

    assert sorted(RANGES) == sorted(numeric_fields(RunConfig))
    assert all(allowed.why for allowed in RANGES.values())


def test_seeds_past_two_to_the_53_stay_exact() -> None:
    assert load_config("smoke", [f"train.seed={2**53 + 1}"]).train.seed == 2**53 + 1
    assert load_config("smoke", ["data.split_seed=12345678901234567"]).data.split_seed == (
        12345678901234567
    )


def test_one_cycle_too_short_to_rise_is_refused_before_the_first_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = ["--set", "data.limit=100", "--set", "train.epochs=1"]
    code = main(["train", "--preset", "default", "--out", str(tmp_path), *sets])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Traceback" not in "".join(err)
    assert "onecycle" in err[-1] and "this run has 4" in err[-1]
    assert list(tmp_path.iterdir()) == []


# --- image folders with links: loops, aliases, val inside train ------------------------------


def image_folder(root: Path) -> Path:
    """train/ and val/ with two classes of three distinct images each: 12 files."""
    for split in ("train", "val"):
        for label, name in enumerate(("ant", "bee")):
            for k in range(3):
                folder = root / split / name
                folder.mkdir(parents=True, exist_ok=True)
                colour = (40 * k, 100 * label, 60 if split == "val" else 0)
                Image.new("RGB", (8, 8), colour).save(folder / f"{k}.png")
    return root


def test_links_in_an_image_folder_never_multiply_or_leak_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from classicnets.config import DataConfig
    from classicnets.data.folders import imagefolder

    root = image_folder(tmp_path / "images")
    (root / "train/ant/loop").symlink_to(root / "train")  # a link loop
    (root / "train/ant/again").symlink_to(root / "train/ant")  # the folder itself
    (root / "train/bee/copy.png").symlink_to(root / "train/bee/0.png")  # one file twice
    (root / "train/bee/val").symlink_to(root / "val/bee")  # val images inside train
    with caplog.at_level("WARNING"):
        splits = imagefolder(DataConfig(name="imagefolder", root=str(root)))
    train = [Path(path).name for path, _ in splits.train.samples]
    assert len(train) == 6 + 3 and len(splits.test.samples) == 6
    assert "reached twice" in caplog.text and "1 files and 2 folders" in caplog.text
    assert "3 files are also in the training split" in caplog.text


# --- exit codes --------------------------------------------------------------------------------


def test_ctrl_c_exits_130_with_a_resumable_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal
    import threading
    import time

    def press_ctrl_c_after_the_first_checkpoint() -> None:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*/checkpoints/last.pt")) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    sets = ["--set", "train.epochs=40", "--set", "train.checkpoint_every_steps=1"]
    presser = threading.Thread(target=press_ctrl_c_after_the_first_checkpoint)
    presser.start()
    code = main(["train", "--preset", "smoke", "--out", str(tmp_path), *sets])
    presser.join()
    assert code == 130
    (run,) = tmp_path.iterdir()
    assert '"status": "interrupted"' in (run / "summary.json").read_text()
    assert "resume with" in capsys.readouterr().out


def test_a_bug_exits_1_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from classicnets.cli import models

    def broken(*args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(models, "run_models", broken)  # the parser is built in main()
    code = main(["models"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "internal error" in err.splitlines()[-1]


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "x..y"])
def test_a_run_name_that_leaves_out_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / "runs"
    code = main(
        ["train", "--preset", "smoke", "--out", str(out), "--set", f"train.run_name={name}"]
    )
    assert code == 2 and "train.run_name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --- names from data rendered in reports: HTML in Markdown, mathtext in figures ---------------

HOSTILE_CLASSES = ("<script>alert(1)</script>", "$x^$ bad maths", "a $b$ c")


def test_class_and_run_names_are_text_in_reports_and_figures(tmp_path: Path) -> None:
    from test_report_fixtures import make_run_folder

    first = make_run_folder(tmp_path, "<img src=x onerror=alert(1)>", classes=HOSTILE_CLASSES)
    second = make_run_folder(tmp_path, "$y$", classes=HOSTILE_CLASSES, seed=1)
    assert main(["report", str(first)]) == 0
    report = (first / "report.md").read_text()
    assert "<script>" not in report and "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "figure" not in " ".join(line for line in report.splitlines() if "skipped" in line)
    labels = "<b>one</b>,$two$"
    out = tmp_path / "comparison"
    assert main(["compare", str(first), str(second), "--labels", labels, "--out", str(out)]) == 0
    comparison = (out / "comparison.md").read_text()
    assert "<b>" not in comparison and "<script>" not in comparison and "<img" not in comparison
    assert "&lt;b&gt;one&lt;/b&gt;" in comparison
    assert "figure" not in " ".join(line for line in comparison.splitlines() if "skipped" in line)


def test_a_figure_that_fails_says_why() -> None:
    from classicnets.report import plots

    assert plots.failure_reason(ValueError("\n$x^$\n^\nParseException: Expected token")) == (
        "ValueError: ParseException: Expected token"
    )
    assert plots.failure_reason(ValueError("")) == "ValueError"


# --- one writer per run folder ------------------------------------------------------------------


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_second_writer_stops_naming_the_holder_and_a_stale_lock_is_taken_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from classicnets.train.run_lock import RunLock

    run = fit(load_config("smoke", ["train.epochs=2"]), tmp_path, stop_after_steps=5)
    metrics_before = (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    with RunLock(run):  # another process training this run
        assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"in use by pid {os.getpid()}" in err[-1] and len(err) == 1
    assert (run / "metrics.jsonl").read_text() == metrics_before  # nothing written twice
    (run / ".lock").write_text(f'{{"pid": {dead_pid()}, "host": "gone"}}')  # killed holder
    assert main(["train", "--resume", str(run)]) == 0
    assert "stale lock" in capsys.readouterr().err
    assert [row["epoch"] for row in map(json.loads, (run / "metrics.jsonl").open())] == [1, 2]
    assert not (run / ".lock").exists()


def test_a_run_name_restart_never_clears_a_live_first_epoch_run(tmp_path: Path) -> None:
    """The first process is in its first epoch (config.yaml written, no checkpoint yet)."""
    overrides = ["train.run_name=job", "data.synthetic_count=3000", "train.epochs=1"]
    sets = [arg for override in overrides for arg in ("--set", override)]
    command = [sys.executable, "-m", "classicnets", "train", "--preset", "smoke", *sets]
    first = subprocess.Popen(
        [*command, "--out", str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run = tmp_path / "job"
    try:
        deadline = time.monotonic() + 120
        while not (run / "env.json").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # the lock is taken right after env.json is written
        with pytest.raises(UserError, match=f"in use by pid {first.pid}"):
            fit(load_config("smoke", overrides), tmp_path)
        with pytest.raises(UserError, match=f"in use by pid {first.pid}"):
            fit(load_config("smoke", overrides), resume=run)  # a second writer
        assert (run / "config.yaml").is_file() and (run / "env.json").is_file()
        assert not list(run.glob("checkpoints/*.pt"))  # still in its first epoch
    finally:
        first.kill()
        first.wait()
    # killed before its first checkpoint: now the folder provably holds no run
    assert fit(load_config("smoke", overrides), tmp_path, stop_after_steps=2) == run


# --- divergence and vanished folders ------------------------------------------------------------


def test_a_diverging_run_never_saves_non_finite_weights_and_says_which_step_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The loss is checked every 100 steps, checkpoints are saved every step."""
    sets = ["optim.lr=1e9", "optim.momentum=0", "train.checkpoint_every_steps=1"]
    sets += ["train.log_every_steps=100", "train.epochs=3"]
    args = [arg for override in sets for arg in ("--set", override)]
    assert main(["train", "--preset", "smoke", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "non-finite" in err or "loss became" in err
    (run,) = tmp_path.iterdir()
    for path in sorted(run.glob("checkpoints/*.pt")):
        model = torch.load(path, weights_only=False)["model"]  # our own files, any format
        assert all(tensor.isfinite().all() for tensor in model.values()), path.name
    last = load_checkpoint(run / "checkpoints/last.pt")
    if "non-finite" in err:
        assert f"last.pt still holds step {last['train_state']['global_step']}" in err


def test_evaluate_refuses_non_finite_weights_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_checkpoint(run_dir / "checkpoints/best.pt")
    state["model"]["classifier.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    assert main(["evaluate", str(tmp_path / "nan.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite weights (classifier.weight" in err[0]


@pytest.mark.parametrize("loss", ["folder", "config"])
def test_a_run_whose_folder_vanishes_mid_run_stops_without_recreating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], loss: str
) -> None:
    from classicnets.train import run as loop_module  # where the loop saves checkpoints

    real_save, calls = loop_module.save_checkpoint, [0]

    def save_then_vanish(state: object, path: Path, *args: object, **kwargs: object) -> None:
        real_save(state, path, *args, **kwargs)  # type: ignore[arg-type]
        calls[0] += 1
        if calls[0] == 2:  # someone deletes the folder (or its config) mid-run
            run = path.parent.parent
            shutil.rmtree(run) if loss == "folder" else (run / "config.yaml").unlink()

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_vanish)
    sets = ["--set", "train.epochs=2", "--set", "train.checkpoint_every_steps=1"]
    code = main(["train", "--preset", "smoke", "--out", str(tmp_path / "runs"), *sets])
    err = capsys.readouterr().err.strip().splitlines()
    vanished = "during training" in err[-1] or "No such file or directory" in err[-1]
    assert code == 2 and vanished and "Traceback" not in "".join(err), err
    runs = list((tmp_path / "runs").iterdir())
    assert runs == [] if loss == "folder" else not (runs[0] / "config.yaml").exists()
