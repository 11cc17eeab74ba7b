"""Device and precision defaults: what `auto` picks on each kind of device, and the sync-free
helpers the GPU path relies on (checked on CPU; the CUDA branches are exercised where a GPU is)."""

import dataclasses

import pytest
import torch

from classicnets import precision as precision_module
from classicnets.config import TrainConfig
from classicnets.data.batch_transforms import crop_at, to_device
from classicnets.device import pick_device
from classicnets.errors import UserError
from classicnets.evaluate.metrics import confusion_matrix
from classicnets.precision import pick_precision
from classicnets.run_record import collect_environment


def test_auto_on_cpu_without_native_bf16_is_fp32_with_channels_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    precision = pick_precision(TrainConfig(), torch.device("cpu"))
    assert precision.amp_dtype is None
    assert not precision.use_grad_scaler
    assert precision.channels_last


@pytest.mark.parametrize(
    ("native_bf16", "dtype", "scaler"),
    [(True, torch.bfloat16, False), (False, torch.float16, True)],
)
def test_auto_on_cuda_picks_bf16_where_native_else_fp16_with_a_scaler(
    monkeypatch: pytest.MonkeyPatch, native_bf16: bool, dtype: torch.dtype, scaler: bool
) -> None:
    monkeypatch.setattr(precision_module, "has_native_bf16", lambda device: native_bf16)
    precision = pick_precision(TrainConfig(), torch.device("cuda"))
    assert precision.amp_dtype == dtype
    assert precision.use_grad_scaler == scaler
    assert precision.channels_last


def test_auto_on_mps_is_fp32_without_channels_last() -> None:
    precision = pick_precision(TrainConfig(), torch.device("mps"))
    assert precision.amp_dtype is None
    assert not precision.channels_last


def test_explicit_settings_override_auto() -> None:
    cfg = dataclasses.replace(TrainConfig(), amp="bf16", channels_last="no")
    precision = pick_precision(cfg, torch.device("cpu"))
    assert precision.amp_dtype == torch.bfloat16
    assert not precision.use_grad_scaler  # a scaler is only for fp16 on CUDA
    assert not precision.channels_last


def test_asking_for_an_absent_gpu_is_a_user_error() -> None:
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            pick_device("cuda")
    assert pick_device("cpu") == torch.device("cpu")


def test_confusion_matrix_counts_pairs() -> None:
    predictions = torch.tensor([0, 1, 1, 2, 2, 2])
    targets = torch.tensor([0, 1, 2, 2, 2, 0])
    expected = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 2]])
    assert torch.equal(confusion_matrix(predictions, targets, 3), expected)


def test_to_device_keeps_values_and_dtype() -> None:
    draws = torch.tensor([3, 1, 4])
    moved = to_device(draws, torch.device("cpu"))
    assert torch.equal(moved, draws) and moved.dtype == draws.dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_crops_on_cuda_equal_crops_on_cpu() -> None:
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    top, left = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 2, 1, 0])
    flip = torch.tensor([True, False, True, False])
    on_cpu = crop_at(images, top, left, 5, flip)
    on_gpu = crop_at(images.cuda(), top, left, 5, flip)
    assert torch.equal(on_gpu.cpu(), on_cpu)


@pytest.mark.parametrize(
    ("mkldnn_bf16", "avx512_bf16", "amx", "machine", "expected"),
    [
        (True, True, False, "x86_64", torch.bfloat16),  # AVX512_BF16 (Zen 4/5, Cooper Lake)
        (True, False, True, "x86_64", torch.bfloat16),  # AMX (Sapphire Rapids and later)
        (True, False, False, "x86_64", None),  # AVX-512 without bf16: oneDNN emulates it
        (False, False, False, "x86_64", None),  # AVX2
        (True, False, False, "aarch64", torch.bfloat16),  # oneDNN's check is Arm's BF16
        (False, False, False, "aarch64", None),
    ],
)
def test_auto_on_cpu_is_bf16_only_where_the_cpu_runs_it_natively(
    monkeypatch: pytest.MonkeyPatch,
    mkldnn_bf16: bool,
    avx512_bf16: bool,
    amx: bool,
    machine: str,
    expected: torch.dtype | None,
) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: mkldnn_bf16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(precision_module.platform, "machine", lambda: machine)
    precision = pick_precision(TrainConfig(), torch.device("cpu"))
    assert precision.amp_dtype == expected
    assert precision.name == ("bf16" if expected else "fp32")
    assert not precision.use_grad_scaler
    off = pick_precision(dataclasses.replace(TrainConfig(), amp="off"), torch.device("cpu"))
    assert off.amp_dtype is None and off.name == "fp32"


def test_env_json_records_the_precision_in_use() -> None:
    env = collect_environment(torch.device("cpu"), "bf16", ["classicnets", "train"])
    assert env.precision == "bf16" and env.device == "cpu"
