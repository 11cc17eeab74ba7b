import json
from pathlib import Path

import pytest

from classicnets.cli import main
from classicnets.config import load_config, replace
from classicnets.errors import UserError
from classicnets.experiments import ablate
from classicnets.experiments.catalog import BUDGETS, EXPERIMENTS, get_experiment
from classicnets.experiments.measures import (
    VERDICTS,
    CellStats,
    Reading,
    epochs_to,
    judge,
    ratio_text,
)
from classicnets.experiments.runner import check_cells_differ, check_model_knobs, plan_experiment
from classicnets.run_record import EpochRecord, RunFolder, Summary, read_record

# Mechanics only: tiny synthetic data, one epoch, batch 8 (VGG at 32x32 costs ~1 s a batch).
SYNTHETIC = [
    "--set",
    "data.name=synthetic",
    "--set",
    "data.num_classes=2",
    "--set",
    "data.synthetic_count=8",
    "--set",
    "data.val_fraction=0.25",
    "--set",
    "train.epochs=1",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.progress=false",
]
SIX = ["relu-vs-tanh", "lrn", "overlap-pool", "batchnorm", "vgg-depth", "dropout"]
CPU_BUDGET = {"relu-vs-tanh": "activation", "lrn": "convnet4"}  # experiment -> its cpu grid


@pytest.fixture
def no_run_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    # The per-run HTML report (six matplotlib figures a run) is tested in test_report.py;
    # skipping it here keeps the six experiments within the test-time budget.
    monkeypatch.setattr(ablate, "write_run_report", lambda run_dir: run_dir)


def test_the_six_experiments_are_registered() -> None:
    assert sorted(EXPERIMENTS.names()) == sorted(SIX)


@pytest.mark.parametrize("name", SIX)
def test_quick_budget_runs_on_synthetic_data_and_writes_the_claims_report(
    name: str, tmp_path: Path, no_run_reports: None, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = "2" if name == "relu-vs-tanh" else "1"  # one grid with a spread over seeds
    args = ["experiment", name, "--budget", "quick", "--seeds", seeds, *SYNTHETIC]
    assert main([*args, "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "claims.json").read_text())
    experiment = get_experiment(name)
    assert report["experiment"] == name and report["budget"] == "quick"
    assert [g["grid"] for g in report["grids"]] == [g.name for g in experiment.grids]
    for grid, declared in zip(report["grids"], experiment.grids, strict=True):
        assert (tmp_path / grid["grid"] / "comparison.html").is_file()
        assert [c["statement"] for c in grid["claims"]] == [c.statement for c in declared.claims]
        for claim in grid["claims"]:
            assert claim["verdict"] in VERDICTS
            assert claim["first"]["runs"] == int(seeds)
        for cell in declared.cells:
            for k in range(int(seeds)):
                run = tmp_path / grid["grid"] / ablate.cell_run_name(cell, k)
                summary = json.loads((run / "summary.json").read_text())
                assert summary["status"] == "complete" and summary["dataset"] == "synthetic"
    markdown = (tmp_path / "claims.md").read_text()
    assert "Quick budget" in markdown and "epochs 1" in markdown
    assert "at most" in markdown  # the training subset is stated
    assert (tmp_path / "claims.html").is_file()


def test_rerunning_an_experiment_skips_finished_runs(
    tmp_path: Path, no_run_reports: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["experiment", "overlap-pool", "--seeds", "1", *SYNTHETIC, "--out", str(tmp_path)]
    assert main(args) == 0
    summaries = sorted(tmp_path.glob("pooling/*/seed-0/summary.json"))
    before = [path.stat().st_mtime_ns for path in summaries]
    capsys.readouterr()
    assert main(args) == 0
    assert "skip" in capsys.readouterr().err
    assert [path.stat().st_mtime_ns for path in summaries] == before


def test_unknown_experiment_lists_the_experiments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "relu-vs-sigmoid"]) == 2
    error = capsys.readouterr().err
    assert "unknown experiment 'relu-vs-sigmoid'" in error
    assert all(name in error for name in SIX)


def test_a_bad_override_fails_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["experiment", "relu-vs-tanh", *SYNTHETIC, "--set", "model.dropout=0.5"]
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "does not take model.dropout" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert main(["experiment", "lrn", "--budget", "huge", "--out", str(tmp_path)]) == 2
    assert "--budget must be one of quick, paper, cpu" in capsys.readouterr().err


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("name", SIX)
def test_every_declared_grid_builds_valid_configs_and_claims_name_its_cells(
    budget: str, name: str
) -> None:
    experiment = get_experiment(name)
    if budget == "cpu" and name not in CPU_BUDGET:
        with pytest.raises(UserError, match=r"no cpu budget; experiments with one: lrn, relu"):
            plan_experiment(experiment, budget, None, [])  # type: ignore[arg-type]
        return
    plans = plan_experiment(experiment, budget, None, [])  # type: ignore[arg-type]
    if budget == "cpu":
        assert [plan.grid.name for plan in plans] == [CPU_BUDGET[name]]
    for plan in plans:
        labels = [cell.label for cell in plan.grid.cells]
        assert len(set(labels)) == len(labels)
        assert len({cell.folder for cell in plan.grid.cells}) == len(labels)
        for claim in plan.grid.claims:
            assert {claim.first, claim.second} <= set(labels), (name, claim.statement)
        assert plan.base.data.name == "cifar10"
        if budget == "quick":
            assert plan.base.data.limit_per_class > 0 and plan.base.train.epochs <= 8
        if budget == "cpu":  # the protocol: all training images, 3 seeds, bf16
            assert plan.base.data.val_fraction == 0 and plan.base.data.limit == 0
            assert plan.seeds == 3 and plan.base.train.amp == "bf16"
            assert all(claim.decisive is not None for claim in plan.grid.claims)
            # relu-vs-tanh's runs stop at its threshold, 25% training error; lrn's run on
            stop = 75.0 if name == "relu-vs-tanh" else 0.0
            assert plan.base.train.stop_at_train_top1 == stop


def stats(label: str, *values: float, censored: int = 0) -> CellStats:
    readings = [Reading(v, at_least=i < censored) for i, v in enumerate(values)]
    return CellStats(label, tuple(readings), len(values))


def test_judge_a_lower_is_better_claim_against_the_spread() -> None:
    metric = epochs_to("train_top1", 75.0)
    held = judge(metric, stats("ReLU", 5, 6), stats("tanh", 12, 13), "first_better")
    assert held.verdict == "held" and held.effect == pytest.approx(7.0)
    assert held.noise == pytest.approx(2.0 * (0.5 / 2 + 0.5 / 2) ** 0.5)
    against = judge(metric, stats("ReLU", 12, 13), stats("tanh", 5, 6), "first_better")
    assert against.verdict == "not held"
    noisy = judge(metric, stats("ReLU", 5, 9), stats("tanh", 6, 10), "first_better")
    assert noisy.verdict == "leans held"
    one_seed = judge(metric, stats("ReLU", 5), stats("tanh", 12), "first_better")
    assert one_seed.verdict == "leans held" and one_seed.noise is None


def test_judge_threshold_bounds_and_missing_cells() -> None:
    metric = epochs_to("train_top1", 75.0)
    bound_in_second = judge(
        metric, stats("ReLU", 3, 4), stats("tanh", 8, 8, censored=2), "first_better"
    )
    assert bound_in_second.verdict == "held"  # the bounds only understate the gap
    bound_in_first = judge(
        metric, stats("ReLU", 3, 8, censored=1), stats("tanh", 9, 9.5), "first_better"
    )
    assert bound_in_first.verdict == "leans held"
    neither = judge(metric, stats("a", 8, censored=1), stats("b", 8, censored=1), "first_better")
    assert neither.verdict == "not measured"
    assert judge(metric, stats("a"), stats("b", 3), "first_better").verdict == "not measured"
    assert ratio_text(stats("ReLU", 2), stats("tanh", 8, censored=1)) == "≥ 4.0x"
    assert stats("tanh", 8, 8, censored=2).text() == "> 8"


def test_judge_a_no_gain_claim() -> None:
    from classicnets.experiments.measures import TEST_ERROR

    same = judge(TEST_ERROR, stats("A-LRN", 20.0, 20.4), stats("A", 20.1, 20.3), "no_gain", 0.5)
    assert same.verdict == "held"
    gain = judge(TEST_ERROR, stats("A-LRN", 15.0, 15.2), stats("A", 20.0, 20.2), "no_gain", 0.5)
    assert gain.verdict == "not held"


def run_folder(epochs: list[dict[str, float]], status: str = "complete") -> RunFolder:
    records = [read_record(EpochRecord, epoch, "test", []) for epoch in epochs]
    return RunFolder(
        Path("run"),
        {},
        None,
        Summary(status=status),
        True,
        [record for record in records if record is not None],
        [],
        None,
        {},
    )


def test_epochs_to_reads_the_first_epoch_at_the_threshold() -> None:
    metric = epochs_to("train_top1", 75.0)
    curve = [{"epoch": 1, "train_top1": 50.0}, {"epoch": 2, "train_top1": 76.0}]
    assert metric.read(run_folder(curve)) == Reading(2.0)
    assert metric.read(run_folder(curve[:1])) == Reading(1.0, at_least=True)
    assert metric.read(run_folder(curve[:1], status="running")) is None
    assert metric.name == "epochs to 25% training error"


def test_ablate_command_still_runs_its_grid(tmp_path: Path, no_run_reports: None) -> None:
    args = ["ablate", "--preset", "smoke", "--vary", "model.norm=lrn,none", "--out", str(tmp_path)]
    assert main([*args, "--set", "data.synthetic_count=16", "--set", "train.batch_size=8"]) == 0
    for cell in ablate.parse_vary(["model.norm=lrn,none"]):
        assert (tmp_path / ablate.cell_run_name(cell, 0) / "summary.json").is_file()
    assert (tmp_path / "comparison.html").is_file()


def test_unknown_experiment_name_is_a_user_error() -> None:
    with pytest.raises(UserError, match="Choices: batchnorm, dropout, lrn"):
        get_experiment("nope")


def test_cells_that_would_not_be_what_they_say_are_refused() -> None:
    base = load_config("exp_convnet4_cifar10")
    unset = replace(base, model={"norm": None})  # as if model.norm=none had read as null
    with pytest.raises(UserError, match="keeps its default norm='lrn'"):
        check_model_knobs(unset, ["model.norm=none"], "no LRN")
    vgg = replace(base, model={"name": "vgg11_cifar", "norm": None})
    check_model_knobs(vgg, ["model.norm=none"], "A")  # vgg11_cifar's default is none anyway
    grid = get_experiment("overlap-pool").grids[0]
    with pytest.raises(UserError, match="resolve to the same config"):
        check_cells_differ(grid, [base, base])


def test_grid_option_runs_one_part_of_an_experiment(
    tmp_path: Path, no_run_reports: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["experiment", "lrn", "--grid", "vgg11", "--seeds", "1", *SYNTHETIC]
    assert main([*args, "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "claims.json").read_text())
    assert [g["grid"] for g in report["grids"]] == ["vgg11"]
    assert report["grids_not_run"] == ["convnet4"] and not (tmp_path / "convnet4").exists()
    assert "not run here (--grid): convnet4" in (tmp_path / "claims.md").read_text()
    assert main(["experiment", "lrn", "--grid", "alexnet", "--out", str(tmp_path)]) == 2
    assert "has no grid 'alexnet'; grids: convnet4, vgg11" in capsys.readouterr().err


def test_decisive_rule_for_a_difference_needs_size_and_spread() -> None:
    from classicnets.experiments.measures import TEST_ERROR, judge_decisive

    lrn, none = stats("LRN", 20.0, 20.4, 20.2), stats("no LRN", 21.9, 22.3, 22.1)
    held = judge_decisive(TEST_ERROR, lrn, none, 1.0, ratio=False)
    assert held.verdict == "held" and held.effect == pytest.approx(1.9)
    small = judge_decisive(TEST_ERROR, lrn, stats("no LRN", 20.6, 21.0, 20.8), 1.0, ratio=False)
    assert small.verdict == "not held" and "below the needed size" in small.reason
    noisy = judge_decisive(TEST_ERROR, stats("LRN", 18, 22, 20), none, 1.0, ratio=False)
    assert noisy.verdict == "not held" and "within the noise" in noisy.reason
    worse = judge_decisive(TEST_ERROR, none, lrn, 1.0, ratio=False)
    assert worse.verdict == "not held"
    one = judge_decisive(TEST_ERROR, stats("LRN", 20.0), none, 1.0, ratio=False)
    assert one.verdict == "not measured"


def test_decisive_rule_for_a_ratio_separates_the_seeds() -> None:
    from classicnets.experiments.measures import judge_decisive

    metric = epochs_to("train_top1", 75.0)
    relu = stats("ReLU", 5, 6, 6)
    held = judge_decisive(metric, relu, stats("tanh", 18, 20, 25), 3.0, ratio=True)
    assert held.verdict == "held" and held.effect == pytest.approx(3.0)
    bound = judge_decisive(metric, relu, stats("tanh", 18, 18, 18, censored=3), 3.0, ratio=True)
    assert bound.verdict == "held" and "≥ 18" in bound.reason  # never reached: still >= 3x
    short = judge_decisive(metric, relu, stats("tanh", 9, 30, 30), 3.0, ratio=True)
    assert short.verdict == "not held"  # one tanh seed was only 1.5x slower
    unreached = judge_decisive(metric, stats("ReLU", 5, 18, 6, censored=1), relu, 3.0, ratio=True)
    assert unreached.verdict == "not held" and "never reached" in unreached.reason


def test_cpu_budget_runs_and_reports_decisive_verdicts(
    tmp_path: Path, no_run_reports: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["experiment", "lrn", "--budget", "cpu", "--seeds", "2", *SYNTHETIC]
    assert main([*args, "--set", "train.amp=off", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "claims.json").read_text())
    assert report["budget"] == "cpu" and [g["grid"] for g in report["grids"]] == ["convnet4"]
    (claim,) = report["grids"][0]["claims"]
    assert claim["verdict"] in ("held", "not held")
    markdown = (tmp_path / "claims.md").read_text()
    assert "decisive" in markdown.lower() and "inferred" in markdown
    capsys.readouterr()
    assert main(["experiment", "dropout", "--budget", "cpu", "--out", str(tmp_path / "d")]) == 2
    assert "no cpu budget" in capsys.readouterr().err
