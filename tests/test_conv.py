"""kernels/conv.py: both matrix-product paths ("gemm": forward, input and weight gradient;
"gemm_weight_grad") equal nn.Conv2d's for strides, paddings, dilations and batch chunks, in
float64 and under bf16 autocast; each is taken only where it applies; FLOP counts and gradient
memory layout are unchanged."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from classicnets.kernels import conv as conv_module
from classicnets.kernels.conv import Conv2d, patch_matrix
from classicnets.models import build_model

CL = torch.channels_last


PATHS = ["gemm", "gemm_weight_grad"]


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def everywhere(monkeypatch: pytest.MonkeyPatch, trials_where, path: str) -> pytest.MonkeyPatch:
    """`path` wins every trial, so toy layers test it."""
    monkeypatch.setattr(Conv2d, "kernel_trials", trials_where(path), raising=False)
    return monkeypatch


def _applies(path: str, options: dict[str, object]) -> bool:
    """ "gemm" computes stride-1, dilation-1 convolutions only."""
    return path != "gemm" or all(
        options.get(key, 1) in (1, (1, 1)) for key in ("stride", "dilation")
    )


def _pair(
    in_maps: int, out_maps: int, kernel: int | tuple[int, int], **options: object
) -> tuple[Conv2d, nn.Conv2d]:
    torch.manual_seed(0)
    ours = Conv2d(in_maps, out_maps, kernel, **options).double()  # type: ignore[arg-type]
    torchs = nn.Conv2d(in_maps, out_maps, kernel, **options).double()  # type: ignore[arg-type]
    torchs.load_state_dict(ours.state_dict())
    return ours.to(memory_format=CL), torchs.to(memory_format=CL)


def _grads(layer: nn.Conv2d, x: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    out = layer(x)
    out.backward(g)
    grads = [out, x.grad, layer.weight.grad]
    if layer.bias is not None:
        grads.append(layer.bias.grad)
    layer.zero_grad(set_to_none=True)
    return [t for t in grads if t is not None]


@pytest.mark.parametrize(
    "options",
    [
        {"kernel": 3, "padding": 1},
        {"kernel": 3, "padding": 0, "bias": False},
        {"kernel": 5, "padding": 2, "stride": 2},
        {"kernel": (3, 1), "padding": (1, 0), "stride": (1, 2)},
        {"kernel": 3, "padding": 2, "dilation": 2},
        {"kernel": 11, "stride": 4, "padding": 2},
    ],
)
@pytest.mark.parametrize("chunk_elements", [10**9, 700])  # one chunk; several, the last short
def test_gradients_equal_nn_conv2d(
    options: dict[str, object], chunk_elements: int, everywhere: pytest.MonkeyPatch, path: str
) -> None:
    everywhere.setattr(conv_module, "CHUNK_ELEMENTS", chunk_elements)
    applies = _applies(path, options)
    options = dict(options)  # the parameter dict is shared between the chunk cases
    kernel = options.pop("kernel")
    ours, torchs = _pair(4, 6, kernel, **options)  # type: ignore[arg-type]
    x = torch.randn(5, 4, 23, 19, dtype=torch.float64).contiguous(memory_format=CL)
    g = torch.randn_like(torchs(x))
    out = ours(x.requires_grad_())
    expected = "_Conv2dFnBackward" if applies else "ConvolutionBackward0"
    assert type(out.grad_fn).__name__ == expected
    for mine, theirs in zip(_grads(ours, x, g), _grads(torchs, x, g), strict=True):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.usefixtures("everywhere")
def test_under_bf16_autocast_it_computes_in_bf16_as_nn_conv2d_does() -> None:
    torch.manual_seed(0)
    ours = Conv2d(16, 8, 3, padding=1).to(memory_format=CL)
    torchs = nn.Conv2d(16, 8, 3, padding=1).to(memory_format=CL)
    torchs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 16, 4, 4).contiguous(memory_format=CL)
    g = torch.randn(4, 8, 4, 4)
    results = []
    for layer in (ours, torchs):
        inputs = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(inputs)
        out.backward(g)
        results.append((out, [inputs.grad, layer.weight.grad, layer.bias.grad]))
    (mine, mine_grads), (theirs, their_grads) = results
    assert type(mine.grad_fn).__name__ == "_Conv2dFnBackward"
    assert mine.dtype == theirs.dtype == torch.bfloat16
    torch.testing.assert_close(mine, theirs, rtol=2e-2, atol=2e-2)
    for a, b in zip(mine_grads, their_grads, strict=True):
        assert a is not None and b is not None
        assert a.dtype == b.dtype == torch.float32  # the input's and the parameters' dtype
        torch.testing.assert_close(a, b, rtol=2e-2, atol=5e-2)


@pytest.mark.usefixtures("everywhere")
def test_weight_gradient_keeps_the_weights_channels_last_layout() -> None:
    ours, _ = _pair(3, 8, 3, padding=1)
    ours(torch.randn(2, 3, 6, 6, dtype=torch.float64).contiguous(memory_format=CL)).sum().backward()
    assert ours.weight.grad is not None
    assert ours.weight.grad.stride() == ours.weight.stride()  # no copy into the weight's layout


@pytest.mark.usefixtures("everywhere")
def test_frozen_input_gets_no_gradient_and_bias_still_does() -> None:
    ours, torchs = _pair(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64).contiguous(memory_format=CL)  # no grad
    ours(x).sum().backward()
    torchs(x).sum().backward()
    assert ours.bias is not None and torchs.bias is not None and ours.bias.grad is not None
    torch.testing.assert_close(ours.bias.grad, torchs.bias.grad)
    torch.testing.assert_close(ours.weight.grad, torchs.weight.grad)


@pytest.mark.parametrize("path", PATHS)
def test_fast_path_only_where_it_applies_and_won_its_trial(trials_where, path: str) -> None:
    def backward_kind(layer: Conv2d, x: torch.Tensor) -> str:
        return type(layer(x).grad_fn).__name__

    cl = torch.randn(2, 8, 6, 6).contiguous(memory_format=CL)
    wide = Conv2d(8, 4, 3, padding=1).to(memory_format=CL)
    assert backward_kind(wide, cl) == "ConvolutionBackward0"  # no trials attached: torch's
    wide.__dict__["kernel_trials"] = trials_where("torch")
    assert backward_kind(wide, cl) == "ConvolutionBackward0"  # torch's won the trial
    wide.__dict__["kernel_trials"] = trials_where(path)
    assert backward_kind(wide, cl) == "_Conv2dFnBackward"
    assert backward_kind(wide, cl.contiguous()) == "ConvolutionBackward0"  # NCHW: oneDNN's own
    assert backward_kind(Conv2d(8, 4, 3, groups=2), cl) == "ConvolutionBackward0"
    assert backward_kind(Conv2d(8, 4, 3, padding="same"), cl) == "ConvolutionBackward0"
    empty = torch.randn(0, 8, 6, 6).contiguous(memory_format=CL)
    assert backward_kind(wide, empty) == "ConvolutionBackward0"
    wide(empty).sum().backward()  # zero weight gradient, as nn.Conv2d gives
    assert wide.weight.grad is not None and not wide.weight.grad.any()
    wide.zero_grad(set_to_none=True)
    strided = Conv2d(8, 4, 3, padding=1, stride=2).to(memory_format=CL)
    strided.__dict__["kernel_trials"] = trials_where(path)
    assert backward_kind(strided, cl) == (
        "_Conv2dFnBackward" if path == "gemm_weight_grad" else "ConvolutionBackward0"
    )
    with torch.no_grad():  # evaluation: "gemm" computes the forward, no weight gradient
        torch.testing.assert_close(wide(cl), nn.Conv2d.forward(wide, cl))
    wide.weight.requires_grad_(False)  # frozen: "gemm" may still run, "gemm_weight_grad" not
    frozen = backward_kind(wide, cl.requires_grad_())
    assert frozen == ("_Conv2dFnBackward" if path == "gemm" else "ConvolutionBackward0")


def test_flop_count_is_the_convolutions(everywhere: pytest.MonkeyPatch) -> None:
    """The GEMMs are counted as the convolutions oneDNN would have computed, no more."""
    everywhere.setattr(conv_module, "CHUNK_ELEMENTS", 2000)  # out-of-place addmm is counted
    ours, torchs = _pair(4, 6, 3, padding=1)
    x = torch.randn(4, 4, 8, 8, dtype=torch.float64).contiguous(memory_format=CL)
    counts = []
    for layer in (ours, torchs):
        counter = FlopCounterMode(display=False)
        with counter:
            layer(x.clone().requires_grad_()).sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] == 3 * 2 * 4 * 8 * 8 * 6 * 4 * 9


def test_patch_matrix_rows_are_receptive_fields() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    patches = patch_matrix(x.contiguous(memory_format=CL), (3, 3), (1, 1), (1, 1), (1, 1))
    assert patches.shape == (2 * 4 * 4, 9 * 3)
    # Row of image 1, output pixel (2, 3): kernel rows 1..3, columns 2..4 (4 is padding).
    row = patches[16 + 2 * 4 + 3].view(3, 3, 3)  # (kernel row, kernel column, map)
    padded = nn.functional.pad(x[1], (1, 1, 1, 1))
    torch.testing.assert_close(row, padded[:, 2:5, 3:6].permute(1, 2, 0))


@pytest.mark.parametrize("name", ["alexnet_cifar", "vgg11_bn_cifar", "convnet4_cifar"])
def test_registry_models_use_it(name: str) -> None:
    convs = [m for m in build_model(name, 10).modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is Conv2d for m in convs)
