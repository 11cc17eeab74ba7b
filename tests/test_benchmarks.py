"""Smoke tests of benchmarks/throughput.py and benchmarks/scaling.py: a tiny model, a few steps.

These check that every measurement runs the real code and that the ratios are computed from
the measured rates; they never assert a speed.
"""

import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark


@pytest.fixture(scope="module")
def throughput() -> ModuleType:
    return load_benchmark("throughput")


@pytest.fixture(scope="module")
def scaling(throughput: ModuleType) -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    return load_benchmark("scaling")


def tiny_settings(throughput: ModuleType, **changes: object) -> object:
    values: dict[str, object] = {
        "model": "convnet4_cifar",
        "batch_size": 4,
        "device": "cpu",
        "steps": 1,
        "eval_steps": 1,
        "rounds": 2,
        "workers": 0,
        "images": 12,
        "modes": throughput.MODES,
        "peak_seconds": 0.0,
        "peak_shrink": 16,
    }
    values.update(changes)
    return throughput.Settings(**values)


def test_median_ratios_take_the_median_of_per_round_ratios(throughput: ModuleType) -> None:
    rounds = [
        {"peak_gflops": 10.0, "compute_gflops": 5.0, "compute": 100.0, "pipeline": 90.0},
        {"peak_gflops": 20.0, "compute_gflops": 19.0, "compute": 50.0, "pipeline": 50.0},
        {"peak_gflops": 10.0, "compute_gflops": 8.0, "compute": 80.0, "pipeline": 20.0},
    ]
    rounds[0]["seed"], rounds[1]["seed"], rounds[2]["seed"] = 45.0, 10.0, 40.0
    rounds[0]["stock"], rounds[1]["stock"], rounds[2]["stock"] = 90.0, 25.0, 40.0
    ratios = throughput.median_ratios(rounds)
    assert ratios["compute_efficiency"] == pytest.approx(0.8)  # median of 0.5, 0.95, 0.8
    assert ratios["pipeline_over_compute"] == pytest.approx(0.9)  # median of 0.9, 1.0, 0.25
    assert ratios["speedup_over_seed"] == pytest.approx(2.0)  # median of 2.0, 5.0, 0.5
    assert ratios["speedup_over_stock"] == pytest.approx(1.0)  # median of 1.0, 2.0, 0.5
    assert "eval_speedup_over_seed" not in ratios  # not measured: not reported


def test_every_mode_runs_and_gives_positive_rates(throughput: ModuleType) -> None:
    result = throughput.run_benchmark(tiny_settings(throughput), log=lambda _: None)
    expected = {
        "peak_gflops",
        "compute",
        "compute_gflops",
        "pipeline",
        "pipeline_gflops",
        "seed",
        "stock",
        "eval",
        "seed_eval",
        "contiguous",
        "channels_last",
    }
    assert len(result.rounds) == 2
    for row in result.rounds:
        assert set(row) == expected
        assert all(value > 0 for value in row.values())
    assert result.flops_per_step > 0
    for key in expected:
        assert result.medians[key] == pytest.approx(
            statistics.median(r[key] for r in result.rounds)
        )
    ratios = result.ratios
    for name, (top, bottom) in {
        "compute_efficiency": ("compute_gflops", "peak_gflops"),
        "pipeline_efficiency_of_peak": ("pipeline_gflops", "peak_gflops"),
        "pipeline_over_compute": ("pipeline", "compute"),
        "speedup_over_seed": ("pipeline", "seed"),
        "speedup_over_stock": ("pipeline", "stock"),
        "eval_speedup_over_seed": ("eval", "seed_eval"),
        "channels_last_over_contiguous": ("channels_last", "contiguous"),
    }.items():
        within_rounds = [r[top] / r[bottom] for r in result.rounds]
        assert ratios[name] == pytest.approx(statistics.median(within_rounds))
    # GFLOP/s and images/s describe the same steps
    per_image = result.flops_per_step / 4
    assert result.rounds[0]["compute_gflops"] == pytest.approx(
        result.rounds[0]["compute"] * per_image / 1e9
    )
    assert result.memory["process_rss_mib"] > 0
    text = "\n".join(throughput.report_lines(result, "cmd"))
    assert "speedup_over_seed" in text and "convnet4_cifar" in text
    assert "speedup_over_stock" in text and "CPU flags:" in text


def test_training_step_flops_match_three_times_the_forward_count(throughput: ModuleType) -> None:
    import torch
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5, bias=False))
    x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 5, (8,))
    # forward 2*8*12*5; backward: the weight gradient only (x needs no gradient)
    assert throughput.training_step_flops(model, x, y) == 2 * (2 * 8 * 12 * 5)
    assert all(p.grad is None for p in model.parameters())


def test_pipeline_runs_the_real_loop_across_epoch_ends(throughput: ModuleType) -> None:
    from classicnets.train.setup import build_run_parts

    config = throughput.pipeline_config("convnet4_cifar", 4, "cpu", "synthetic", 12)
    pipeline = throughput.Pipeline(config, build_run_parts(config, None))
    assert len(pipeline.parts.data.train_loader) == 3
    assert pipeline.train_seconds(2) > 0
    assert (pipeline.epoch, pipeline.state.batches_done) == (1, 2)
    pipeline.train_seconds(2)  # does not fit in what is left of epoch 1: starts epoch 2
    assert (pipeline.epoch, pipeline.state.batches_done, pipeline.state.global_step) == (2, 2, 4)
    with pytest.raises(ValueError, match="do not fit"):
        pipeline.train_seconds(4)


def test_unknown_mode_is_refused(throughput: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown modes"):
        throughput.run_benchmark(tiny_settings(throughput, modes=("compute", "warp")))


def test_size_sweep_reports_time_per_image_relative_to_the_largest_set(
    scaling: ModuleType,
) -> None:
    rows = scaling.size_sweep(
        "convnet4_cifar", [4, 8], 4, "synthetic", 1, 1, "epochs", log=lambda _: None
    )
    assert [row["images"] for row in rows] == [4, 8]
    assert rows[1]["relative_to_largest"] == pytest.approx(1.0)
    assert all(row["seconds_per_image"] > 0 for row in rows)
    assert rows[0]["epoch_seconds"] == pytest.approx(4 * rows[0]["seconds_per_image"])
    assert "| 8 |" in "\n".join(scaling.size_table("convnet4_cifar", rows))
    loader_rows = scaling.size_sweep(
        "convnet4_cifar", [4, 8], 4, "synthetic", 1, 2, "loader", log=lambda _: None
    )
    assert "training loader" in loader_rows[0]["measured"]
    assert all(row["seconds_per_image"] > 0 for row in loader_rows)


def test_batch_sweep_reads_one_result_per_batch_size(
    scaling: ModuleType, throughput: ModuleType, tmp_path: Path
) -> None:
    def fake_run(command: list[str]) -> None:
        batch = int(command[command.index("--batch-size") + 1])
        out = Path(command[command.index("--json") + 1])
        rounds = [{"peak_gflops": 10.0, "compute_gflops": 2.0, "compute": batch, "pipeline": 9}]
        out.write_text(
            __import__("json").dumps(
                {
                    "machine": {"torch_threads": 2},
                    "medians": rounds[0],
                    "ratios": throughput.median_ratios(rounds),
                    "memory": {"process_rss_mib": 100.0 + batch},
                }
            )
        )

    rows = scaling.batch_sweep("convnet4_cifar", [8, 16], [], run=fake_run)
    assert [row["peak_rss_mib"] for row in rows] == [108.0, 116.0]
    assert rows[1]["pipeline_efficiency"] == pytest.approx(9 / 16)
    assert rows[0]["compute_efficiency"] == pytest.approx(0.2)
    assert len(scaling.batch_table(rows)) == 4


def test_tutorial_model_uses_torchs_layers_and_computes_the_same(throughput: ModuleType) -> None:
    import torch
    from torch import nn

    from classicnets.kernels import AdaptiveAvgPool2d, Conv2d, Dropout, LocalResponseNorm
    from classicnets.models import build_model

    torch.manual_seed(0)
    ours = build_model("alexnet_cifar", num_classes=10)
    tutorial = throughput.tutorial_model("alexnet_cifar", 10)
    tutorial.load_state_dict(ours.state_dict())
    for theirs, mine in (
        (nn.LocalResponseNorm, LocalResponseNorm),
        (nn.Dropout, Dropout),
        (nn.AdaptiveAvgPool2d, AdaptiveAvgPool2d),
        (nn.Conv2d, Conv2d),
    ):
        kinds = [type(m) for m in tutorial.modules() if isinstance(m, theirs)]
        assert kinds and all(kind is theirs for kind in kinds)
        assert any(isinstance(m, mine) for m in ours.modules())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(tutorial.eval()(x), ours.eval()(x))


def test_profile_step_splits_a_step_by_kind_of_op(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    profile_step = load_benchmark("profile_step")
    assert profile_step.kind_of("aten::mkldnn_convolution") == "convolution"
    assert profile_step.kind_of("ConvolutionBackward0") == "convolution"
    assert profile_step.kind_of("aten::native_batch_norm_backward") == "batch norm"
    assert profile_step.kind_of("aten::_foreach_mul_") == "optimizer"
    assert profile_step.kind_of("aten::max_pool2d_with_indices") == "pooling"
    assert profile_step.kind_of("aten::empty") == "other"
    peak = load_benchmark("peak")
    rate = peak.KernelRate("fp32", "fixed", 100.0)
    monkeypatch.setattr(peak, "kernel_rates", lambda *args, **kwargs: [rate])
    argv = ["--model", "convnet4_cifar", "--batch-size", "4", "--steps", "1"]
    assert profile_step.main([*argv, "--set", "train.amp=off"]) == 0
    out = capsys.readouterr().out
    by_kind, by_layer = out.split("forward pass by layer type")
    shares = [
        float(line.rsplit("|", 2)[1].strip(" %"))
        for line in by_kind.splitlines()
        if line.startswith("| ") and line.endswith("% |")
    ]
    layer_shares = [
        float(line.rsplit("|", 2)[1].strip(" %"))
        for line in by_layer.split("forward convolutions")[0].splitlines()
        if line.startswith("| ") and line.endswith("% |")
    ]
    assert sum(layer_shares) == pytest.approx(100, abs=0.5)
    assert "| convolution |" in out and "peak 100 GFLOP/s" in out
    assert sum(shares) == pytest.approx(100, abs=0.5)
    assert (
        "| Conv2d |" in out
        and "forward convolutions by input shape" in out
        and "| [4, 3, 32, 32] |" in out
    )


def test_denormals_times_adam_with_denormals_kept_and_flushed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    denormals = load_benchmark("denormals")
    assert denormals.main(["--elements", "20000", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    rows = [
        line.split("|")
        for line in out.splitlines()
        if line.startswith("| kept") or line.startswith("| flushed")
    ]
    assert [row[1].strip() for row in rows] == ["kept", "flushed"]
    assert all(float(row[2]) > 0 for row in rows)
    # only the process that asked for it flushes (where the CPU has the mode at all)
    assert [row[3].strip() for row in rows] in (["False", "True"], ["False", "False"])
    assert "kept / flushed:" in out
