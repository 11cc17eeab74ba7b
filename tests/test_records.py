"""benchmarks/record_run.py, records_report.py and run_seeds.py on run folders that real
smoke runs write: a row per finished run, duplicates and unfinished runs refused, the table and
curves redrawn from records.csv alone."""

import csv
import dataclasses
import json
import statistics
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import load_benchmark

from classicnets.config import load_config
from classicnets.train.loop import fit


@pytest.fixture(scope="module")
def record_run() -> ModuleType:
    return load_benchmark("record_run")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two finished smoke runs (seeds 0 and 1, two epochs each)."""
    out = tmp_path_factory.mktemp("runs")
    folders = []
    for seed in (0, 1):
        overrides = [f"train.seed={seed}", "train.epochs=2", "data.val_fraction=0"]
        command = ["classicnets", "train", "--preset", "smoke"]
        command += [word for o in overrides for word in ("--set", o)]
        folders.append(fit(load_config("smoke", overrides), out, command=command))
    return folders


def test_row_holds_the_runs_own_values(record_run: ModuleType, runs: list[Path]) -> None:
    run = record_run.read_run(runs[1])
    row = record_run.record_row(run)
    assert tuple(row) == record_run.COLUMNS
    summary = json.loads((runs[1] / "summary.json").read_text())
    env = json.loads((runs[1] / "env.json").read_text())
    assert row["recipe"] == "smoke" and row["seed"] == "1" and row["epochs"] == "2"
    assert float(row["test_top1"]) == pytest.approx(summary["test_top1"], abs=0.005)
    assert float(row["test_top5"]) == pytest.approx(summary["test_top5"], abs=0.005)
    assert row["precision"] == "fp32"
    assert row["date"] == env["started"] and row["commit"].startswith(str(env["git_commit"]))
    assert "--preset smoke" in row["command"]
    # 64 synthetic training images in each of 2 epochs.
    assert record_run.images_trained(run.epochs) == 128
    per_image = record_run.training_flops_per_image(run.config, run.summary)
    assert float(row["pflop"]) == pytest.approx(per_image * 128 / 1e15, rel=1e-3, abs=1e-4)
    assert per_image > 2 * summary["macs"]  # forward (2 x MACs) plus a backward pass


def test_flops_per_image_count_forward_and_backward(record_run: ModuleType) -> None:
    from classicnets.run_record import Summary

    config = load_config("speedrun")
    summary = Summary(model="speedrun_cifar", num_classes=10, input_size=[3, 32, 32])
    per_image = record_run.training_flops_per_image(config, summary)
    assert per_image == pytest.approx(0.7078e9, rel=1e-3)


def test_append_refuses_duplicates_and_keeps_the_file(
    record_run: ModuleType, runs: list[Path], tmp_path: Path
) -> None:
    records = tmp_path / "records.csv"
    assert record_run.main([str(runs[0]), "--records", str(records)]) == 0
    before = records.read_text()
    assert record_run.main([str(runs[1]), str(runs[0]), "--records", str(records)]) == 2
    assert records.read_text() == before  # all or nothing: seed 1 was not added either
    assert record_run.main([str(runs[1]), "--records", str(records)]) == 0
    with records.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["seed"] for row in rows] == ["0", "1"]
    curve = record_run.curve_path(rows[1], records)
    with curve.open(newline="") as file:
        points = list(csv.DictReader(file))
    assert [point["epoch"] for point in points] == ["1", "2"]


def test_unfinished_run_is_refused(
    record_run: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config("smoke", ["train.epochs=2", "data.val_fraction=0"])
    run_dir = fit(config, tmp_path, stop_after_steps=2)
    records = tmp_path / "records.csv"
    assert record_run.main([str(run_dir), "--records", str(records), "--recipe", "x"]) == 2
    assert not records.exists()
    # The last line: other tests may have pointed the training log at stderr too.
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error:") and "interrupted" in error


def test_tuning_run_on_a_val_split_is_refused(
    record_run: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = fit(load_config("smoke"), tmp_path)  # smoke holds out a quarter for val
    records = tmp_path / "records.csv"
    assert record_run.main([str(run_dir), "--records", str(records), "--recipe", "x"]) == 2
    assert not records.exists() and "tuning run" in capsys.readouterr().err


def test_command_without_preset_needs_a_recipe(
    record_run: ModuleType, runs: list[Path], tmp_path: Path
) -> None:
    assert record_run.recipe_of(["classicnets", "train", "--preset=configs/speedrun.yaml"]) == (
        "speedrun"
    )
    assert record_run.recipe_of(["classicnets", "train"]) is None
    run = record_run.read_run(runs[0])
    environment = dataclasses.replace(run.environment, command=["classicnets", "train"])
    run = dataclasses.replace(run, environment=environment)
    with pytest.raises(Exception, match="--recipe"):
        record_run.record_row(run)
    assert record_run.record_row(run, recipe="mine")["recipe"] == "mine"


def test_report_redraws_table_and_curves_from_records_alone(
    record_run: ModuleType, runs: list[Path], tmp_path: Path
) -> None:
    report = load_benchmark("records_report")
    records = tmp_path / "records.csv"
    record_run.append_records([record_run.read_run(path) for path in runs], records)
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# R\nbefore\n{report.BEGIN}\nold table\n{report.END}\nafter\n")
    assert report.main(["--records", str(records), "--results", str(results)]) == 0
    text = results.read_text()
    assert "old table" not in text and text.startswith("# R\nbefore\n") and "after" in text
    rows = record_run.read_records(records)
    top1 = [float(row["test_top1"]) for row in rows]
    expected = f"{statistics.mean(top1):.2f} ± {statistics.stdev(top1):.2f}"
    summary_line = next(line for line in text.splitlines() if line.startswith("| `smoke`"))
    assert "| 2 | fp32 | 0, 1 |" in summary_line and expected in summary_line
    assert (tmp_path / "records" / "curves-smoke.png").stat().st_size > 1000


def test_mean_std_of_one_seed_says_so() -> None:
    report = load_benchmark("records_report")
    assert report.mean_std([93.5]) == "93.50 (n=1)"
    assert report.mean_std([93.0, 94.0, 95.0]) == "94.00 ± 1.00"


def test_run_seeds_builds_a_resumable_command_per_seed() -> None:
    run_seeds = load_benchmark("run_seeds")
    command = run_seeds.train_command("speedrun", 2, Path("runs/x"), ["data.root=/d"])
    assert command[-2:] == ["--out", "runs/x"]
    sets = [command[i + 1] for i, word in enumerate(command) if word == "--set"]
    assert sets == ["train.seed=2", "train.run_name=speedrun-seed2", "data.root=/d"]


def test_run_seeds_records_after_the_last_seed_and_keeps_finished_ones(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records written between seeds would make the checkout dirty for the next seed's run, so
    nothing is written until training stops; a failed seed still leaves the earlier recorded."""
    import shutil

    run_seeds = load_benchmark("run_seeds")
    records = tmp_path / "records.csv"
    out = tmp_path / "out"
    calls: list[int] = []

    def fake_train(command: list[str], **_: object) -> int:
        seed = int(command[command.index("--set") + 1].removeprefix("train.seed="))
        calls.append(seed)
        assert not records.exists(), "records.csv written before the last seed trained"
        if seed == 2:
            return 1
        shutil.copytree(runs[seed], out / f"smoke-seed{seed}")
        return 0

    monkeypatch.setattr(run_seeds.subprocess, "call", fake_train)
    argv = ["smoke", "--seeds", "0", "1", "2", "--out", str(out), "--records", str(records)]
    assert run_seeds.main(argv) == 1
    assert calls == [0, 1, 2]
    rows = load_benchmark("record_run").read_records(records)
    assert [row["seed"] for row in rows] == ["0", "1"]
    # Running it again records nothing twice.
    monkeypatch.setattr(run_seeds.subprocess, "call", lambda command, **_: 0)
    records_before = records.read_text()
    assert run_seeds.main([*argv[:4], *argv[5:]]) == 0  # seeds 0 and 1
    assert records.read_text() == records_before


def test_run_seeds_side_by_side_splits_the_cores_and_logs_each_seed(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import threading

    run_seeds = load_benchmark("run_seeds")
    records = tmp_path / "records.csv"
    out = tmp_path / "out"
    started: dict[int, str] = {}
    lock = threading.Lock()

    def fake_train(command: list[str], env: dict[str, str], stdout: object, stderr: int) -> int:
        seed = int(command[command.index("--set") + 1].removeprefix("train.seed="))
        with lock:
            started[seed] = env["OMP_NUM_THREADS"]
        stdout.write(f"seed {seed} trains\n")  # type: ignore[attr-defined]
        if seed == 1:
            return 3
        shutil.copytree(runs[seed], out / f"smoke-seed{seed}")
        return 0

    monkeypatch.setattr(run_seeds.subprocess, "call", fake_train)
    monkeypatch.setattr(run_seeds.os, "cpu_count", lambda: 4)
    argv = ["smoke", "--seeds", "0", "1", "--jobs", "2", "--out", str(out)]
    assert run_seeds.main([*argv, "--records", str(records)]) == 3
    assert started == {0: "2", 1: "2"}
    assert (out / "smoke-seed1.log").read_text() == "seed 1 trains\n"
    rows = load_benchmark("record_run").read_records(records)
    assert [row["seed"] for row in rows] == ["0"]  # the seed that finished is still recorded


def test_cpu_names_family_model_and_bf16_flags_on_the_machine_that_ran_it(
    record_run: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classicnets.run_record.records import Environment

    info = {"model name": "AMD EPYC", "cpu family": "26", "model": "2", "flags": "avx2 avx512_bf16"}
    monkeypatch.setattr(record_run, "_cpuinfo", lambda: info)
    here = Environment(device="cpu", device_name="AMD EPYC", cpu_threads=2)
    assert record_run.cpu_of(here) == "AMD EPYC (family 26 model 2, avx512_bf16), 2 threads"
    elsewhere = dataclasses.replace(here, device_name="Intel(R) Xeon(R) Processor", cpu_threads=1)
    assert record_run.cpu_of(elsewhere) == "Intel(R) Xeon(R) Processor, 1 thread"
    gpu = Environment(device="cuda", device_name="NVIDIA H200", cpu_threads=16)
    assert record_run.cpu_of(gpu) == "NVIDIA H200, 16 threads"
