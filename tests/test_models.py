"""The model zoo: every model builds and runs, exact parameter counts, torchvision parity,
the paper's LRN equation, the grouped-conv column split, knobs and user errors."""

import pickle

import pytest
import torch
import torchvision
from torch import nn

from classicnets.errors import UserError
from classicnets.models import (
    MODELS,
    AuxOutput,
    build_model,
    check_input_size,
    list_models,
    model_info,
)
from classicnets.models.blocks import paper_lrn
from classicnets.registry import UnknownNameError

# Exact parameter counts at 1000 classes (10 for the _cifar models).
PARAM_COUNTS = {
    "alexnet": 60_965_224,  # Fig. 2 with groups=2 in conv2, conv4, conv5
    "alexnet_onetower": 62_378_344,
    "alexnet_owt": 61_100_840,  # torchvision's alexnet
    "vgg11": 132_863_336,
    "vgg11_lrn": 132_863_336,  # LRN has no parameters
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    # C = D with the last conv of stages 3-5 being 1x1 instead of 3x3:
    # 138,357,544 - 256*256*8 - 2 * 512*512*8 = 133,638,952 (Table 2 rounds it to 134M).
    "vgg16_c": 133_638_952,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "alexnet_cifar": 36_925_322,
    "resnet18": 11_689_512,  # torchvision's published count
    "resnet18_cifar": 11_173_962,
    "convnet4_cifar": 89_578,  # 2,432 + 25,632 + 51,264 + 10,250
    # The nets of the published student runs (docs/reproductions.md), at 10 classes:
    "alexnet_onetower_nolrn": 58_322_314,  # 3,747,200 convs + 9216-4096-4096-10
    "alexnet_onetower_bn": 58_325_066,  # + 2 x (96 + 256 + 384 + 384 + 256) BN
    "alexnet_cifar_nolrn": 36_925_322,
    "alexnet_onetower_128": 24_767_882,  # 3,747,200 convs + 1024-4096-4096-10
    "vgg16_cifar_fc": 33_638_218,  # 14,714,688 convs + 512-4096-4096-10
    "vgg16_bn_cifar_fc": 33_646_666,
    "vgg13_128": 59_785_802,  # 9,404,992 convs + 8192-4096-4096-10
}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


_SHARED: dict[str, nn.Module] = {}


def build_for_forward(name: str) -> nn.Module:
    """An eval-mode model at its default class count; a few are built once and shared with the
    parity and AlexNet tests (which do not depend on test order), since VGG-sized builds cost
    seconds on a CPU."""
    if name in _SHARED:
        return _SHARED[name]
    model = build_model(name, num_classes=model_info(name).num_classes).eval()
    if name in ("alexnet", "alexnet_owt", "vgg11", "vgg16_bn"):
        _SHARED[name] = model
    return model


def build_on_meta(name: str, num_classes: int, **options: object) -> nn.Module:
    """Same constructor code, but no memory and no real init: cheap for VGG-19."""
    with torch.device("meta"):
        return build_model(name, num_classes=num_classes, **options)


@pytest.mark.parametrize("name", list_models())
def test_model_returns_finite_logits_at_native_size(name: str) -> None:
    info = model_info(name)
    model = build_for_forward(name)
    with torch.no_grad():
        logits = model(torch.randn(2, *info.input_size))
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (2, info.num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["alexnet", "vgg16_cifar", "resnet18", "googlenet_cifar"])
def test_num_classes_sets_the_output_width(name: str) -> None:
    model = build_on_meta(name, 7).eval()
    side = model_info(name).input_size[-1]
    assert model(torch.empty(2, 3, side, side, device="meta")).shape == (2, 7)


@pytest.mark.parametrize(("name", "expected"), sorted(PARAM_COUNTS.items()))
def test_param_count_matches_paper_or_torchvision(name: str, expected: int) -> None:
    model = build_on_meta(name, model_info(name).num_classes)
    assert count_params(model) == expected


def test_googlenet_trunk_matches_torchvision_published_count() -> None:
    model = build_on_meta("googlenet", 1000)
    aux = sum(count_params(getattr(model, head)) for head in ("aux1", "aux2"))
    assert count_params(model) - aux == 6_624_904


@pytest.mark.parametrize("name", list_models())
def test_min_input_size_runs_and_check_rejects_smaller(name: str) -> None:
    info = model_info(name)
    check_input_size(name, info.min_input_size)
    with pytest.raises(UserError, match=f"at least {info.min_input_size}x"):
        check_input_size(name, info.min_input_size - 1)
    model = build_on_meta(name, 10).eval()
    side = info.min_input_size
    assert model(torch.empty(2, 3, side, side, device="meta")).shape == (2, 10)
    if info.family not in ("resnet", "googlenet"):  # adaptive pooling accepts anything
        with pytest.raises(RuntimeError):
            model(torch.empty(2, 3, side - 1, side - 1, device="meta"))


@pytest.mark.parametrize("name", list_models())
def test_builder_docstring_ends_with_deviations(name: str) -> None:
    doc = MODELS.get(name).__doc__ or ""
    assert "Deviations:" in doc, name


def test_alexnet_owt_matches_torchvision_alexnet() -> None:
    reference = torchvision.models.alexnet(weights=None).eval()
    ours = build_for_forward("alexnet_owt")
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
def test_vgg_matches_torchvision(name: str) -> None:
    reference = getattr(torchvision.models, name)(weights=None).eval()
    for module in reference.modules():  # non-trivial BN statistics, so they must load too
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    ours = build_for_forward(name)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)  # parity holds at any size; 64x64 keeps the test fast
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize(
    "name", ["vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg19_bn", "resnet18"]
)
def test_state_dict_keys_and_shapes_match_torchvision(name: str) -> None:
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(weights=None)
    ours = build_on_meta(name, 1000)
    expected = {key: value.shape for key, value in reference.state_dict().items()}
    assert {key: value.shape for key, value in ours.state_dict().items()} == expected


def test_googlenet_state_dict_matches_torchvision_with_aux_heads() -> None:
    with torch.device("meta"):
        reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    ours = build_on_meta("googlenet", 1000)
    expected = {key: value.shape for key, value in reference.state_dict().items()}
    assert {key: value.shape for key, value in ours.state_dict().items()} == expected


def paper_lrn_reference(
    a: torch.Tensor, k: float, n: int, alpha: float, beta: float
) -> torch.Tensor:
    """§3.3 literally: b_i = a_i / (k + alpha * sum_j a_j^2)^beta, with j running over
    max(0, i - n/2) .. min(N - 1, i + n/2)."""
    channels = a.shape[1]
    out = torch.empty_like(a)
    for i in range(channels):
        low, high = max(0, i - n // 2), min(channels - 1, i + n // 2)
        total = (a[:, low : high + 1] ** 2).sum(dim=1)
        out[:, i] = a[:, i] / (k + alpha * total) ** beta
    return out


def test_lrn_equals_paper_equation() -> None:
    torch.manual_seed(0)
    # Activations of this size make alpha * sum(a^2) comparable to k, so a wrong alpha shows.
    a = torch.randn(2, 12, 5, 5) * 40
    expected = paper_lrn_reference(a, k=2.0, n=5, alpha=1e-4, beta=0.75)
    torch.testing.assert_close(paper_lrn()(a), expected)
    # The paper's two-column AlexNet normalises each column's maps on their own (§3.2, §3.3).
    lrn_in_alexnet = build_on_meta("alexnet", 10).features[2]
    assert isinstance(lrn_in_alexnet, nn.LocalResponseNorm)
    per_column = [paper_lrn_reference(h, k=2.0, n=5, alpha=1e-4, beta=0.75) for h in a.chunk(2, 1)]
    torch.testing.assert_close(lrn_in_alexnet(a), torch.cat(per_column, dim=1))
    lrn_in_one_tower = build_on_meta("alexnet_onetower", 10).features[2]
    torch.testing.assert_close(lrn_in_one_tower(a), expected)
    naive = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)  # PyTorch divides alpha by n
    assert not torch.allclose(naive(a), expected, rtol=1e-3)


def test_alexnet_grouped_convs_equal_two_independent_columns() -> None:
    torch.manual_seed(0)
    model = build_for_forward("alexnet")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [conv.groups for conv in convs] == [1, 2, 1, 2, 2]  # conv3 sees both columns (§3.5)
    for conv in (convs[1], convs[3], convs[4]):
        half_in, half_out = conv.in_channels // 2, conv.out_channels // 2
        x = torch.randn(1, conv.in_channels, 13, 13)
        outputs = []
        for column in range(2):
            single = nn.Conv2d(half_in, half_out, conv.kernel_size, padding=conv.padding)
            rows = slice(column * half_out, (column + 1) * half_out)
            single.weight.data.copy_(conv.weight.data[rows])
            assert conv.bias is not None
            single.bias.data.copy_(conv.bias.data[rows])
            outputs.append(single(x[:, column * half_in : (column + 1) * half_in]))
        with torch.no_grad():
            torch.testing.assert_close(conv(x), torch.cat(outputs, dim=1).detach())


def test_alexnet_paper_init() -> None:
    model = build_for_forward("alexnet")  # freshly initialised; forward passes change nothing
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    # §5: bias 1 in conv2, conv4, conv5 and the hidden FC layers, 0 elsewhere.
    biases = [float(layer.bias.detach().unique()) for layer in convs + fcs]
    assert biases == [0, 1, 0, 1, 1, 1, 1, 0]
    for layer in convs + fcs:
        assert layer.weight.mean().abs() < 2e-3
        assert layer.weight.std().item() == pytest.approx(0.01, rel=0.05)


def test_alexnet_structure_follows_the_paper() -> None:
    model = build_on_meta("alexnet", 1000)
    kinds = [type(m).__name__ for m in model.features]
    # §3.3 LRN after the ReLU of conv1 and conv2; §3.4 pools after conv1, conv2, conv5.
    assert kinds[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert kinds.count("LocalResponseNorm") == 2
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2)] * 3
    dropouts = [m.p for m in model.classifier if isinstance(m, nn.Dropout)]
    assert dropouts == [0.5, 0.5]
    assert isinstance(model.classifier[-1], nn.Linear)  # no dropout before fc8


def test_alexnet_cifar_layout_reaches_4096_features() -> None:
    model = build_model("alexnet_cifar", num_classes=10).eval()
    with torch.no_grad():
        features = model.features(torch.randn(1, 3, 32, 32))
    assert features.shape == (1, 256, 4, 4)
    first_fc = model.classifier[0]
    assert isinstance(first_fc, nn.Linear) and first_fc.in_features == 4096
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)


def test_alexnet_knobs_change_the_network() -> None:
    def kinds(**options: object) -> list[str]:
        model = build_on_meta("alexnet_cifar", 10, **options)
        return [type(m).__name__ for m in model.modules()]

    assert "LocalResponseNorm" not in kinds(norm="none")
    assert kinds(norm="bn").count("BatchNorm2d") == 5
    tanh = kinds(activation="tanh")
    assert "ReLU" not in tanh and tanh.count("Tanh") == 7
    overlapping = build_on_meta("alexnet_cifar", 10, overlap_pool=True)
    assert {m.kernel_size for m in overlapping.modules() if isinstance(m, nn.MaxPool2d)} == {3}
    assert overlapping(torch.empty(1, 3, 32, 32, device="meta")).shape == (1, 10)
    model = build_on_meta("alexnet", 10, dropout=0.3)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]


def test_init_schemes_differ() -> None:
    def first_conv_std(init: str) -> float:
        torch.manual_seed(0)
        model = build_model("alexnet_cifar", num_classes=10, init=init)
        return float(model.features[0].weight.detach().std())

    assert first_conv_std("paper") == pytest.approx(0.01, rel=0.2)
    assert first_conv_std("kaiming") == pytest.approx((2 / 27) ** 0.5, rel=0.2)
    assert first_conv_std("xavier") == pytest.approx((2 / (27 + 96 * 9)) ** 0.5, rel=0.2)


def test_vgg_norm_knob() -> None:
    lrn = build_on_meta("vgg11_lrn", 10)
    kinds = [type(m).__name__ for m in lrn.features]
    assert kinds[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]  # A-LRN
    assert kinds.count("LocalResponseNorm") == 1
    bn = build_on_meta("vgg16", 10, norm="bn")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 13


def test_vgg_paper_init_and_cifar_head() -> None:
    torch.manual_seed(0)
    model = build_model("vgg11_cifar", num_classes=10, init="paper")
    conv = model.features[0]
    assert float(conv.weight.detach().std()) == pytest.approx(1e-2, rel=0.2)
    assert float(conv.bias.detach().abs().max()) == 0.0
    head = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in head] == [(512, 10)]


def test_convnet4_knobs() -> None:
    model = build_on_meta("convnet4_cifar", 10)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds.count("LocalResponseNorm") == 2
    assert kinds.count("MaxPool2d") == 1 and kinds.count("AvgPool2d") == 2
    tanh = build_on_meta("convnet4_cifar", 10, activation="tanh", norm="none", overlap_pool=False)
    tanh_kinds = [type(m).__name__ for m in tanh.features]
    assert "LocalResponseNorm" not in tanh_kinds and tanh_kinds.count("Tanh") == 3
    pools = [m for m in tanh.features if isinstance(m, nn.MaxPool2d | nn.AvgPool2d)]
    assert {m.kernel_size for m in pools} == {2}
    assert tanh(torch.empty(1, 3, 32, 32, device="meta")).shape == (1, 10)


def test_googlenet_train_mode_returns_aux_output() -> None:
    model = build_model("googlenet_cifar", num_classes=5)
    output = model(torch.randn(2, 3, 32, 32))
    assert isinstance(output, AuxOutput)
    assert output.logits.shape == (2, 5)
    assert [aux.shape for aux in output.aux_logits] == [(2, 5), (2, 5)]
    model.eval()
    with torch.no_grad():
        assert isinstance(model(torch.randn(2, 3, 32, 32)), torch.Tensor)


def test_googlenet_class_built_on_demand_is_torchvisions_and_pickles() -> None:
    # The class is made when first needed (torchvision loads late); it must still be one class,
    # a torchvision GoogLeNet, and reachable by pickle under its module name.
    from classicnets.models import googlenet

    model = build_model("googlenet_cifar", num_classes=3)
    assert type(model) is googlenet.GoogLeNet is type(build_model("googlenet", num_classes=3))
    assert isinstance(model, torchvision.models.GoogLeNet)
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is googlenet.GoogLeNet
    assert torch.equal(copy.fc.weight, model.fc.weight)


def test_unknown_model_lists_close_names() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean alexnet") as error:
        build_model("alexnett")
    assert isinstance(error.value, UserError)
    assert "vgg16_bn" in str(error.value)  # and all the choices


def test_unknown_option_names_model_and_accepted_options() -> None:
    with pytest.raises(UserError, match="model vgg16 does not accept activation") as error:
        build_model("vgg16", activation="tanh")
    assert "norm, dropout, dropout_position, pooled_size, fc_width, init" in str(error.value)
    with pytest.raises(UserError, match="resnet18 does not accept norm; it takes no options"):
        build_model("resnet18", norm="bn")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"norm": "BN"}, "norm must be one of lrn, bn, none"),
        ({"activation": "gelu"}, "activation must be one of relu, tanh"),
        ({"init": "he"}, "init must be one of paper, kaiming, xavier, torchvision"),
        ({"overlap_pool": "yes"}, "overlap_pool must be one of true, false"),
        ({"dropout": 1.0}, "dropout must be a number in"),
    ],
)
def test_bad_option_values_raise_user_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        build_model("alexnet_cifar", num_classes=10, **options)


@pytest.mark.parametrize("num_classes", [0, -3])
def test_num_classes_below_one_raises(num_classes: int) -> None:
    with pytest.raises(UserError, match="num_classes"):
        build_model("convnet4_cifar", num_classes=num_classes)


def test_unset_options_keep_builder_defaults() -> None:
    model = build_model("convnet4_cifar", 10, norm=None, init=None, column_devices=[])
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2


def test_model_info() -> None:
    info = model_info("alexnet")
    assert info.input_size == (3, 227, 227)
    assert info.min_input_size == 67
    assert "§3" in info.paper and info.family == "alexnet"
    assert info.options == (
        "norm",
        "lrn_alpha",
        "activation",
        "overlap_pool",
        "columns",
        "dropout",
        "dropout_position",
        "pooled_size",
        "init",
    )
    assert model_info("vgg16_bn_cifar").num_classes == 10


def test_lrn_alpha_pytorch_is_nn_local_response_norm_as_ports_call_it() -> None:
    torch.manual_seed(0)
    a = torch.randn(2, 96, 5, 5) * 40
    lrn = build_on_meta("alexnet_onetower_128", 10).features[2]
    port = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)  # 2e-5 in §3.3's form
    torch.testing.assert_close(lrn(a), port(a))
    torch.testing.assert_close(lrn(a), paper_lrn_reference(a, k=2.0, n=5, alpha=2e-5, beta=0.75))


def _kinds(layers: nn.Module) -> list[str]:
    return [type(layer).__name__ for layer in layers.children()]


def test_write_up_nets_have_the_layers_their_runs_describe() -> None:
    no_lrn = build_on_meta("alexnet_cifar_nolrn", 10)
    assert "LocalResponseNorm" not in _kinds(no_lrn.features)
    assert "LocalResponseNorm" in _kinds(build_on_meta("alexnet_cifar", 10).features)
    imagenette = build_on_meta("alexnet_onetower_nolrn", 10)
    assert _kinds(imagenette.classifier) == [
        "Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear",
    ]  # fmt: skip
    assert [m.groups for m in imagenette.features if isinstance(m, nn.Conv2d)] == [1] * 5
    assert imagenette.features[0].padding == (0, 0)  # conv1 11x11/4, no padding
    vgg = build_on_meta("vgg16_bn_cifar_fc", 10)
    assert _kinds(vgg.classifier) == [
        "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear",
    ]  # fmt: skip
    assert vgg.classifier[0].in_features == 512
    vgg128 = build_on_meta("vgg13_128", 10)
    assert sum(isinstance(m, nn.Conv2d) for m in vgg128.features) == 10
    assert vgg128.classifier[1].in_features == 8192 and vgg128.classifier[0].p == 0.5


def test_write_up_nets_map_their_native_inputs_to_the_fc_widths_without_resizing() -> None:
    for name, side, pooled in (("alexnet_onetower_128", 128, 2), ("vgg13_128", 128, 4)):
        model = build_on_meta(name, 10)
        maps = model.features(torch.empty(1, 3, side, side, device="meta"))
        assert maps.shape[-1] == pooled, name  # the avgpool is the identity there


def test_knobs_rebuild_one_variant_from_another() -> None:
    tuned = build_on_meta(
        "vgg16_bn_cifar", 10, fc_width=4096, dropout=0.5, dropout_position="after_fc"
    )
    assert count_params(tuned) == 33_646_666
    merged = build_on_meta("alexnet", 10, columns=1, norm="none", dropout_position="before_fc")
    assert count_params(merged) == 58_322_314
    with pytest.raises(UserError, match=r"pooled_size must be a whole number in \[1, inf\)"):
        build_model("vgg16_cifar", pooled_size=0)
    with pytest.raises(UserError, match="columns must be one of 1, 2"):
        build_model("alexnet", columns=3)
