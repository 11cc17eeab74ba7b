"""Data-parallel training: shards of a global batch, exact metric merges, loss weights, and two
gloo ranks that train the same weights as one process (and resume bit for bit)."""

import copy
import itertools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.run import get_args_parser

from classicnets.cli import build_parser
from classicnets.config import DataConfig, load_config
from classicnets.data import build_loader, build_splits
from classicnets.data.memory_loader import Shard
from classicnets.errors import UserError
from classicnets.evaluate.loop import evaluate, merge_results
from classicnets.models import build_model
from classicnets.models.alexnet import TwoColumnAlexNet, split_columns
from classicnets.precision import Precision
from classicnets.train.distributed import (
    DistContext,
    context_from_env,
    global_batch_count,
    rank_loss,
)
from classicnets.train.loop import fit
from classicnets.train.setup import build_model_for, check_names, load_state_strict

CPU = torch.device("cpu")
TIMING = ("epoch_seconds", "images_per_second")
# 75 images: 56 train, 19 val, 75 test. A global batch of 15 splits 8 + 7 over two ranks at
# every step (the last batch of 11 as 6 + 5), and val and test shard unevenly too, so the
# loss weights and the count-each-sample-once paths are always exercised.
DDP_OVERRIDES = [
    "data.synthetic_count=75",
    "train.batch_size=15",
    "train.epochs=2",
    "train.log_every_steps=3",
    # progress lines (no terminal here) add reduce steps; every rank must take part in them
    "train.progress=true",
    "schedule.name=cosine",
]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread, as each torchrun rank has: fast on a busy 2-core machine, and
    the same kernels as the ranks we compare against."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rows(run_dir: Path) -> list[dict[str, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(run_dir / "checkpoints/last.pt", weights_only=False)["model"])


# --- sharding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("in_memory", ["yes", "no"])
@pytest.mark.parametrize("augment", ["crop_flip", "random_resized_crop"])
def test_rank_slices_of_each_global_batch_are_the_single_process_batch(in_memory, augment):
    config = DataConfig(
        name="synthetic",
        synthetic_count=70,
        num_classes=4,
        val_fraction=0.0,
        in_memory=in_memory,
        augment=augment,
        num_workers=0,
    )
    splits = build_splits(config)

    def batches(shard: Shard, train: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
        dataset = splits.train if train else splits.test
        loader = build_loader(
            dataset,
            config,
            splits.info,
            train=train,
            batch_size=16,
            seed=3,
            device=CPU,
            shard=shard,
        )
        return list(loader.epoch(2, start_batch=1 if train else 0))

    whole = batches(Shard())
    ranks = [batches(Shard(rank, 3)) for rank in range(3)]
    assert [len(part) for part in ranks] == [len(whole)] * 3  # every rank takes every step
    assert [len(part[-1][1]) for part in ranks] == [2, 2, 2]  # the last batch of 6, split
    for step, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([part[step][0] for part in ranks]), x)
        assert torch.equal(torch.cat([part[step][1] for part in ranks]), y)
    # evaluation: contiguous ranges, every sample once, in order
    test_targets = torch.cat([y for _, y in batches(Shard(), train=False)])
    sharded = [y for rank in range(3) for _, y in batches(Shard(rank, 3), train=False)]
    assert torch.equal(torch.cat(sharded), test_targets)


def test_shard_bounds_split_unevenly_and_cover_everything():
    for count in (0, 1, 2, 5, 16):
        bounds = [Shard(rank, 3).bounds(count) for rank in range(3)]
        assert bounds[0][0] == 0 and bounds[-1][1] == count
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        sizes = [stop - start for start, stop in bounds]
        assert max(sizes) - min(sizes) <= 1


def test_evaluation_shards_merge_into_the_whole_result():
    config = DataConfig(name="synthetic", synthetic_count=37, num_classes=6, val_fraction=0.0)
    splits = build_splits(config)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 6))
    precision = Precision(CPU, None, False, False)
    mean_std = (splits.info.mean, splits.info.std)

    def result(shard: Shard):  # type: ignore[no-untyped-def]
        loader = build_loader(
            splits.test,
            config,
            splits.info,
            train=False,
            batch_size=8,
            seed=0,
            device=CPU,
            shard=shard,
        )
        return evaluate(model, loader.epoch(0), precision, 6, collect=True, mean_std=mean_std)

    whole = result(Shard())
    merged = merge_results([result(Shard(rank, 4)) for rank in range(4)])
    assert merged.count == whole.count == 37
    assert torch.equal(merged.confusion, whole.confusion)
    assert (merged.top1, merged.top5) == (whole.top1, whole.top5)
    assert merged.loss == pytest.approx(whole.loss, rel=1e-6)
    for name in ("targets", "top5_indices"):
        assert torch.equal(getattr(merged, name), getattr(whole, name))
    assert torch.allclose(merged.top5_probs, whole.top5_probs)
    assert merged.sample_rows == whole.sample_rows
    assert all(
        (a == b).all() for a, b in zip(merged.sample_images, whole.sample_images, strict=True)
    )


# --- the loss of a rank ------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [7, 2])  # 3+2+2 samples over 3 ranks; 1+1+0 (an empty rank)
def test_rank_losses_average_to_the_gradient_of_the_global_mean(batch):
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, y = torch.randn(batch, 5), torch.randint(0, 3, (batch,))
    F.cross_entropy(model(x), y).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    world = 3
    total = global_batch_count(16, 16 * 4 + batch, 4)  # the short last batch of an epoch
    assert total == batch
    average = [torch.zeros_like(p) for p in model.parameters()]
    for rank in range(world):
        start, stop = Shard(rank, world).bounds(batch)
        model.zero_grad()
        loss = F.cross_entropy(model(x[start:stop]), y[start:stop])
        rank_loss(loss, stop - start, total, world).backward()
        for sum_, p in zip(average, model.parameters(), strict=True):
            assert torch.isfinite(p.grad).all()
            sum_ += p.grad / world  # what DDP's all-reduce computes
    for got, want in zip(average, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_rank_comes_from_torchrun_variables():
    assert context_from_env({}) == DistContext()
    assert context_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == DistContext(
        3, 4, 1
    )
    assert not context_from_env({"RANK": "1", "WORLD_SIZE": "2"}).is_main
    for bad in ({"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"}):
        with pytest.raises(UserError, match="RANK"):
            context_from_env(bad)


# --- two gloo ranks ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rank_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One torchrun-like rank: the variables torchrun sets, then the same fit() calls."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    config = load_config("smoke", DDP_OVERRIDES)
    fit(config, Path(out), run_name="whole")
    broken = fit(config, Path(out), run_name="broken", stop_after_steps=5)  # step 2 of epoch 2
    fit(config, resume=broken)


def test_two_gloo_ranks_train_like_one_process_and_resume_exactly(tmp_path, one_thread):
    out = tmp_path / "ddp"
    torch.multiprocessing.spawn(_rank_worker, args=(2, _free_port(), str(out)), nprocs=2)
    single = fit(load_config("smoke", DDP_OVERRIDES), tmp_path / "single", run_name="single")
    whole, resumed = out / "whole", out / "broken"
    assert sorted(p.name for p in out.iterdir()) == ["broken", "whole"]  # rank 1 wrote nothing
    # 2 ranks x 8 images = 1 process x 16 images, up to float summation order
    expected, got = weights(single), weights(whole)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)
    for ddp_row, single_row in zip(rows(whole), rows(single), strict=True):
        assert ddp_row == pytest.approx(single_row, rel=1e-5)
    # a mid-epoch stop and resume under DDP continues bit for bit
    assert rows(resumed) == rows(whole)
    assert all(torch.equal(weights(resumed)[k], got[k]) for k in got)
    checkpoint = torch.load(resumed / "checkpoints/last.pt", weights_only=False)
    assert len(checkpoint["rank_rng"]) == 2
    # every test image counted once, although 75 does not split into equal shards
    test = json.loads((whole / "eval/test/metrics.json").read_text())
    reference = json.loads((single / "eval/test/metrics.json").read_text())
    assert test["count"] == 75 and test["per_class_count"] == reference["per_class_count"]
    assert test["top1"] == pytest.approx(reference["top1"])
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs"] == 2


# --- docs/scaling.md: every command parses; the CPU one runs and survives a killed rank -------

SCALING_DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"


def doc_commands(tag: str) -> list[list[str]]:
    """The torchrun/classicnets command lines of the doc's ```<tag> blocks, as argv lists;
    shell variables become "2" (a valid node count, id or host name)."""
    blocks = re.findall(rf"^```{tag}\n(.*?)^```", SCALING_DOC.read_text(), re.M | re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\$\{?\w+\}?", "2", line.strip())
            argv = shlex.split(line, comments=True)
            argv = argv[1:] if argv[:1] == ["srun"] else argv
            if argv[:1] in (["torchrun"], ["classicnets"]):
                commands.append(argv)
    return commands


def classicnets_args(argv: list[str]) -> list[str]:
    if argv[0] == "classicnets":
        return argv[1:]
    launch = get_args_parser().parse_args(argv[1:])
    assert launch.module and launch.training_script == "classicnets", argv
    return list(launch.training_script_args)


def test_every_command_in_the_scaling_doc_parses_with_valid_settings():
    commands = doc_commands("bash") + doc_commands("bash cpu-tested")
    assert sum(argv[0] == "torchrun" for argv in commands) >= 5
    for argv in commands:
        args = build_parser().parse_args(classicnets_args(argv))
        if args.command == "train" and args.preset:
            load_config(args.preset, args.set)  # unknown keys or bad values raise UserError


def _ranks_of(marker: str) -> dict[int, int]:
    """{LOCAL_RANK: pid} of the processes started with `marker` in their environment."""
    ranks = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = dict(
                item.split("=", 1) for item in environ.read_text().split("\0") if "=" in item
            )
        except OSError:  # the process just ended
            continue
        if variables.get("FAULT_DRILL") == marker and "LOCAL_RANK" in variables:
            ranks[int(variables["LOCAL_RANK"])] = int(environ.parent.name)
    return ranks


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds ranks through /proc")
def test_scaling_doc_cpu_command_runs_and_survives_a_killed_rank(tmp_path, one_thread):
    (argv,) = doc_commands("bash cpu-tested")
    argv = [str(Path(sys.executable).parent / argv[0]), *argv[1:]]  # torchrun of this venv
    marker = uuid.uuid4().hex
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FAULT_DRILL": marker}
    log = tmp_path / "torchrun.log"
    run_dir = tmp_path / "runs/ddp-smoke"
    with log.open("w") as output:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=output, stderr=output)
        try:
            deadline = time.monotonic() + 120
            while (
                not (run_dir / "checkpoints/last.pt").exists()
                or torch.load(run_dir / "checkpoints/last.pt", weights_only=False)["train_state"][
                    "global_step"
                ]
                < 2
            ):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
                time.sleep(0.05)
            os.kill(_ranks_of(marker)[1], signal.SIGKILL)
            process.wait(timeout=300)
        finally:
            process.kill()
    output_text = log.read_text()
    assert process.returncode == 0, output_text
    assert output_text.count("rank 0 of 2") == 2  # started, then restarted by torchrun
    assert "train.run_name=ddp-smoke: resuming" in output_text
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs"] == 12
    launch = get_args_parser().parse_args(argv[1:])
    train_args = build_parser().parse_args(list(launch.training_script_args))
    reference = fit(load_config(train_args.preset, train_args.set), tmp_path / "reference")
    # equal up to float summation order (~1e-6 here); a skipped batch is off by percents
    for got, want in zip(rows(run_dir), rows(reference), strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    expected = weights(reference)
    for key, value in weights(run_dir).items():
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=1e-5)


# --- AlexNet's two columns on two devices (§3.2) -----------------------------------------------


@pytest.mark.parametrize("name", ["alexnet", "alexnet_bn"])
def test_two_columns_on_one_device_are_the_grouped_model(name, one_thread):
    torch.manual_seed(0)
    grouped = build_model(name, num_classes=10, dropout=0.0)
    columns = split_columns(copy.deepcopy(grouped), [CPU, CPU])
    assert isinstance(columns, TwoColumnAlexNet)
    # the same tensors under the same keys: checkpoints load into either model
    expected, got = grouped.state_dict(), columns.state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], v) for k, v in expected.items())
    x, y = torch.randn(4, 3, 99, 99), torch.arange(4)
    grouped.eval(), columns.eval()
    with torch.no_grad():
        torch.testing.assert_close(columns(x), grouped(x))
    grouped.train(), columns.train()  # batch statistics for alexnet_bn; no dropout
    if name == "alexnet":  # one SGD step: gradients flow alike through the exchanges
        for model in (grouped, columns):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    else:
        torch.testing.assert_close(columns(x), grouped(x))
    got = columns.state_dict()  # updated weights, or BatchNorm running statistics
    for key, value in grouped.state_dict().items():
        torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-6)
    load_state_strict(grouped, got, "two columns")  # and back again
    load_state_strict(columns, expected, "grouped")


def test_columns_see_only_the_maps_the_paper_gives_them():
    columns = split_columns(build_model("alexnet", num_classes=10), [CPU, CPU])
    assert len(columns.columns[0].stages) == 2  # one exchange in the conv layers: before conv3
    for column in columns.columns:
        # §3.3 on two GPUs: each column's LRN sums over its own maps only
        norms = [m for m in column.modules() if isinstance(m, nn.LocalResponseNorm)]
        assert len(norms) == 2 and all(getattr(m, "groups", 1) == 1 for m in norms)
        convs = [m for m in column.modules() if isinstance(m, nn.Conv2d)]
        # §3.2/Fig. 2: conv2, conv4, conv5 read their own column's maps; conv3 reads both
        assert [c.in_channels for c in convs] == [3, 48, 256, 192, 192]
        assert [c.out_channels for c in convs] == [48, 128, 192, 192, 128]
        fcs = [m for m in column.modules() if isinstance(m, nn.Linear)]
        assert [(fc.in_features, fc.out_features) for fc in fcs] == [(9216, 2048), (4096, 2048)]
    assert (columns.fc8.in_features, columns.fc8.out_features) == (4096, 10)


def test_column_devices_build_through_the_engine_and_refuse_other_models():
    config = load_config(None, ["model.name=alexnet", "model.column_devices=[cpu, cpu]"])
    check_names(config)
    model = build_model_for(config.model, num_classes=10, image_size=227)
    assert isinstance(model, TwoColumnAlexNet)
    other = load_config(None, ["model.name=alexnet_cifar", "model.column_devices=cpu,cpu"])
    with pytest.raises(UserError, match="alexnet_cifar has no columns"):
        check_names(other)
    with pytest.raises(UserError, match="two devices"):
        split_columns(build_model("alexnet", num_classes=10), [CPU])
