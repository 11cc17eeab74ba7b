import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from classicnets.cli import main
from classicnets.errors import UserError
from classicnets.zoo.evaluate import parse_normalize, weights_transform
from classicnets.zoo.weights import (
    ZOO,
    ZOO_TABLE,
    build_zoo_model,
    load_zoo_model,
    resolve_models,
)

VAL_CLASSES = (0, 1, 7)  # sorted-wnid indices of the val folders; two images each


def wnid(index: int) -> str:
    return f"n{index:08d}"


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (80, 60)) -> None:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.numpy()).save(path, quality=90)


def make_imagenet(
    root: Path, name: Callable[[int], str] = wnid, val_classes: tuple[int, ...] = VAL_CLASSES
) -> Path:
    """train/ with 1000 wnid folders of one tiny image each (only indexed, never read), and a
    val/ folder with two images in each of `val_classes`."""
    tiny = root / "tiny.jpeg"
    write_jpeg(tiny, 0, (8, 8))
    data = tiny.read_bytes()
    for index in range(1000):
        folder = root / "train" / name(index)
        folder.mkdir(parents=True)
        (folder / "a.JPEG").write_bytes(data)
    for index in val_classes:
        for k in range(2):
            write_jpeg(root / "val" / name(index) / f"v{k}.JPEG", 10 * index + k)
    tiny.unlink()
    return root


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_imagenet(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A random torchvision AlexNet whose last bias makes class 0 first and 1-4 next."""
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None).eval()
    with torch.no_grad():
        model.classifier[6].bias[0] += 100.0
        model.classifier[6].bias[1:5] += 50.0
    path = tmp_path_factory.mktemp("weights") / "alexnet.pth"
    torch.save(model.state_dict(), path)
    return path, model


def zoo_args(imagenet: Path, out: Path, *extra: str) -> list[str]:
    return [
        "zoo",
        "evaluate",
        *extra,
        "--set",
        f"data.root={imagenet}",
        "--set",
        "data.num_workers=0",
        "--set",
        "train.batch_size=4",
        "--out",
        str(out),
    ]


def test_zoo_models_have_torchvision_state_dict_keys_and_shapes() -> None:
    for entry in ZOO_TABLE:
        with torch.device("meta"):
            extra = {"aux_logits": True, "init_weights": True} if entry.name == "googlenet" else {}
            theirs = getattr(torchvision.models, entry.name)(weights=None, **extra).state_dict()
            ours = build_zoo_model(entry).state_dict()
        assert {k: v.shape for k, v in theirs.items()} == {k: v.shape for k, v in ours.items()}


def test_saved_torchvision_alexnet_gives_identical_logits(
    alexnet_file: tuple[Path, torch.nn.Module],
) -> None:
    path, theirs = alexnet_file
    ours = load_zoo_model(ZOO["alexnet"], str(path))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "vgg11"])
def test_saved_torchvision_weights_give_identical_logits(name: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    # torchvision loads its GoogLeNet weights with aux heads and transform_input on
    extra = {"aux_logits": True, "transform_input": True, "init_weights": True}
    theirs = getattr(torchvision.models, name)(
        weights=None, **(extra if name == "googlenet" else {})
    ).eval()
    path = tmp_path / f"{name}.pth"
    torch.save({f"module.{k}": v for k, v in theirs.state_dict().items()}, path)  # DataParallel
    ours = load_zoo_model(ZOO[name], str(path))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("tta", ["none", "10crop"])
def test_zoo_evaluate_writes_the_table_beside_published_numbers(
    imagenet: Path,
    alexnet_file: tuple[Path, torch.nn.Module],
    tmp_path: Path,
    tta: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = alexnet_file
    code = main(zoo_args(imagenet, tmp_path, "alexnet", "--weights", str(path), "--tta", tta))
    assert code == 0, capsys.readouterr().err
    (row,) = json.loads((tmp_path / "zoo.json").read_text())["rows"]
    # the bias makes every image class 0 first and classes 0-4 the top five: of the val
    # images (classes 0, 1, 7, two each) a third are right at top-1 and two thirds at top-5
    assert row["images"] == 6 and row["tta"] == tta
    assert row["top1"] == pytest.approx(100 / 3) and row["top5"] == pytest.approx(200 / 3)
    assert (row["published_top1"], row["published_top5"]) == (56.522, 79.066)
    assert row["flagged"] and row["gap_top1"] == pytest.approx(100 / 3 - 56.522)
    table = (tmp_path / "zoo.md").read_text()
    assert "| alexnet | alexnet_owt |" in table and "gap > 0.1" in table
    assert "not comparable" in table  # 6 images, not the 50,000 of ILSVRC-2012 val


def test_weights_transform_rebuilt_from_metadata_matches_torchvision() -> None:
    image = Image.new("RGB", (300, 260))
    image.putdata([(x % 256, (x * 7) % 256, (x * 13) % 256) for x in range(300 * 260)])
    entry = ZOO["alexnet"]
    own = weights_transform(entry)(image)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    torch.testing.assert_close(weights_transform(entry, normalize=(mean, std))(image), own)
    views = weights_transform(entry, "10crop")(image)
    assert views.shape == (10, 3, 224, 224)
    torch.testing.assert_close(views[9], views[4].flip(-1))  # the mirrored centre crop
    half = weights_transform(entry, normalize=parse_normalize("0.5,0.5"))(image)
    assert not torch.allclose(half, own)


def test_normalize_override_warns_and_is_recorded(
    imagenet: Path,
    alexnet_file: tuple[Path, torch.nn.Module],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = alexnet_file
    args = zoo_args(imagenet, tmp_path, "alexnet", "--weights", str(path))
    assert main([*args, "--normalize", "0.5,0.5"]) == 0
    assert "replaces the weights' own normalisation" in capsys.readouterr().err
    (row,) = json.loads((tmp_path / "zoo.json").read_text())["rows"]
    assert row["normalize"].startswith("mean=(0.5, 0.5, 0.5)")


def test_cached_default_weights_load_without_network(
    alexnet_file: tuple[Path, torch.nn.Module],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, theirs = alexnet_file
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "alexnet-owt-7be5be79.pth").symlink_to(path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache must be used without touching the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    ours = load_zoo_model(ZOO["alexnet"])
    x = torch.randn(1, 3, 100, 100)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_offline_default_weights_fail_in_one_line(
    imagenet: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))

    def offline(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "create_connection", offline)
    assert main(zoo_args(imagenet, tmp_path, "alexnet")) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "cannot download" in error and "--weights PATH" in error


def save_torchvision(tmp_path: Path, name: str, **kwargs: int) -> Path:
    path = tmp_path / f"{name}.pth"
    torch.save(getattr(torchvision.models, name)(weights=None, **kwargs).state_dict(), path)
    return path


def test_bad_weight_files_are_one_line_errors(
    alexnet_file: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    entry = ZOO["alexnet"]
    with pytest.raises(UserError, match=r"does not fit this model: .*missing keys"):
        load_zoo_model(entry, str(save_torchvision(tmp_path, "resnet18")))
    with pytest.raises(UserError, match=r"shape mismatch at classifier.6.weight.*class count"):
        load_zoo_model(entry, str(save_torchvision(tmp_path, "alexnet", num_classes=10)))
    truncated = tmp_path / "truncated.pth"
    data = alexnet_file[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated"):
        load_zoo_model(entry, str(truncated))
    not_weights = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(UserError, match="holds no state_dict"):
        load_zoo_model(entry, str(not_weights))
    with pytest.raises(UserError, match="no file at"):
        load_zoo_model(entry, str(tmp_path / "missing.pth"))


def test_badly_structured_imagenet_folders_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unused = tmp_path / "unused.pth"
    unused.touch()  # never read: the folder is refused first
    weights = ["alexnet", "--weights", str(unused)]
    flat = tmp_path / "flat"
    for k in range(3):
        write_jpeg(flat / "val" / f"ILSVRC2012_val_{k:08d}.JPEG", k)
    assert main(zoo_args(flat, tmp_path / "out", *weights)) == 2
    assert "not split into class folders" in capsys.readouterr().err
    few = tmp_path / "few"
    for index in VAL_CLASSES:
        write_jpeg(few / "val" / wnid(index) / "a.JPEG", index)
    assert main(zoo_args(few, tmp_path / "out", *weights)) == 2
    assert "has 3 classes" in capsys.readouterr().err
    named = make_imagenet(tmp_path / "named", name=lambda i: f"class{i:04d}", val_classes=(0, 1))
    assert main(zoo_args(named, tmp_path / "out", *weights)) == 2
    assert "is not a WordNet id" in capsys.readouterr().err


def test_model_names_resolve_to_zoo_entries() -> None:
    assert [e.name for e in resolve_models(["all"])] == [e.name for e in ZOO_TABLE]
    assert resolve_models(["alexnet_owt", "alexnet"]) == [ZOO["alexnet"]]
    with pytest.raises(UserError, match="no pretrained weights for 'vgg16_c'"):
        resolve_models(["vgg16_c"])


def test_a_weights_file_needs_exactly_one_model(
    imagenet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = zoo_args(imagenet, tmp_path, "alexnet", "vgg16", "--weights", "x.pth")
    assert main(args) == 2
    assert "name exactly one model" in capsys.readouterr().err


def write_synset_words(path: Path, count: int = 1000) -> Path:
    path.write_text("".join(f"{wnid(i)} class number {i}\n" for i in range(count)))
    return path


def partial_val(root: Path, classes: tuple[int, ...] = VAL_CLASSES) -> Path:
    """val/ with two images in each of `classes` and no train/: a subset of the 1,000."""
    for index in classes:
        for k in range(2):
            write_jpeg(root / "val" / wnid(index) / f"v{k}.JPEG", 10 * index + k)
    return root


def test_partial_val_keeps_the_thousand_way_index_from_synset_words(
    tmp_path: Path, alexnet_file: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = alexnet_file
    root = partial_val(tmp_path / "val_subset")
    write_synset_words(root / "synset_words.txt")
    code = main(zoo_args(root, tmp_path / "out", "alexnet", "--weights", str(path)))
    assert code == 0, capsys.readouterr().err
    (row,) = json.loads((tmp_path / "out" / "zoo.json").read_text())["rows"]
    # Classes 0-4 are the model's top five: images of classes 0 and 1 are in it, class 7's are
    # not. Numbered 0, 1, 2 among the three folders, class 7 would wrongly count as a hit.
    assert (row["images"], row["classes"]) == (6, 3)
    assert row["top1"] == pytest.approx(100 / 3) and row["top5"] == pytest.approx(200 / 3)
    assert not row["comparable"]
    table = (tmp_path / "out" / "zoo.md").read_text()
    assert "6 images of 3 classes: not comparable to the published number" in table


def test_partial_val_needs_a_full_wnid_list(
    tmp_path: Path, alexnet_file: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = alexnet_file
    root = partial_val(tmp_path / "val_subset")
    short = write_synset_words(tmp_path / "short.txt", 999)
    args = zoo_args(root, tmp_path / "out", "alexnet", "--weights", str(path))
    assert main([*args, "--wnids", str(short)]) == 2
    assert "lists 999 distinct wnids" in capsys.readouterr().err
    other = tmp_path / "other.txt"
    other.write_text("".join(f"n9{i:07d} x\n" for i in range(1000)))
    assert main([*args, "--wnids", str(other)]) == 2
    assert f"class folder {wnid(0)} is not one of the 1,000 wnids" in capsys.readouterr().err


def test_several_weight_files_in_one_command(
    imagenet: Path, alexnet_file: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    first, model = alexnet_file
    with torch.no_grad():
        model.classifier[6].bias[7] += 200.0  # now class 7 comes first
    second = tmp_path / "second.pth"
    torch.save(model.state_dict(), second)
    with torch.no_grad():
        model.classifier[6].bias[7] -= 200.0
    forms = (
        (["alexnet"], ["--weights", str(first), "--weights", str(second)]),
        ([], ["--weights", f"alexnet={first}", "--weights", f"alexnet={second}"]),
    )
    for form, (names, weights) in enumerate(forms):
        out = tmp_path / f"form{form}"
        assert main(zoo_args(imagenet, out, *names, *weights)) == 0
        rows = json.loads((out / "zoo.json").read_text())["rows"]
        assert [row["weights"] for row in rows] == [str(first), str(second)]
        assert [row["top1"] for row in rows] == pytest.approx([100 / 3, 100 / 3])
        assert [row["top5"] for row in rows] == pytest.approx([200 / 3, 100.0])
