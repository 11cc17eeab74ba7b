"""Each data set format, written small into tmp_path with the real file layouts, and every bad
input the data sets must turn into a one-line UserError."""

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from classicnets.cli import main
from classicnets.config import DataConfig
from classicnets.data import DATASETS, FileImageDataset, build_splits
from classicnets.data.datasets import UnreadableImageError, load_image
from classicnets.data.folders import IMAGENETTE_CLASSES
from classicnets.data.imagenet import imagenet_category_names
from classicnets.errors import UserError

CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def cifar_batch(rng: np.random.Generator, count: int, num_classes: int = 10) -> tuple:
    return rng.integers(0, 256, (count, 3072), dtype=np.uint8), rng.integers(0, num_classes, count)


def write_pickle(path: Path, content: object) -> None:
    path.write_bytes(pickle.dumps(content, protocol=2))


def write_cifar10_pickles(
    folder: Path, per_batch: int = 4, test: int = 6, bytes_keys=False
) -> dict:
    """The cifar-10-batches-py layout; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = cifar_batch(rng, test if name == "test_batch" else per_batch)
        write_pickle(folder / name, {key("data"): data, key("labels"): [int(v) for v in labels]})
        written[name] = (data, labels)
    write_pickle(folder / "batches.meta", {key("label_names"): CIFAR10_NAMES})
    return written


def write_cifar10_binary(folder: Path, per_batch: int = 3) -> dict:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        data, labels = cifar_batch(rng, per_batch)
        records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
        records.tofile(folder / name)
        written[name] = (data, labels)
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    return written


def write_image(path: Path, size=(20, 16), mode="RGB", color=(200, 30, 60), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)
    return path


def write_folder_split(split_dir: Path, classes: list[str], per_class: int = 2) -> None:
    for index, name in enumerate(classes):
        for i in range(per_class):
            ext = "JPEG" if i % 2 == 0 else "png"
            write_image(split_dir / name / f"{name}_{i}.{ext}", color=(index * 40, 100, 20 * i))


def cfg(name: str, root: Path, **changes) -> DataConfig:
    return DataConfig(name=name, root=str(root), val_fraction=0.0, **changes)


# --- CIFAR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("point_at_release_folder", [False, True])
def test_cifar10_pickle_release_loads_from_parent_or_release_folder(
    tmp_path, point_at_release_folder
):
    written = write_cifar10_pickles(tmp_path / "cifar-10-batches-py")
    root = tmp_path / "cifar-10-batches-py" if point_at_release_folder else tmp_path
    splits = build_splits(cfg("cifar10", root))
    assert len(splits.train) == 20 and len(splits.test) == 6
    assert splits.info.classes == CIFAR10_NAMES and splits.info.image_size == 32
    data, labels = written["data_batch_2"]
    image = splits.train.images[4]  # first image of the second batch
    # rows are channel-major: the first 1024 bytes are the red plane
    assert torch.equal(image[0].flatten(), torch.from_numpy(data[0, :1024]))
    assert torch.equal(image[2].flatten(), torch.from_numpy(data[0, 2048:]))
    assert int(splits.train.targets[4]) == labels[0]
    assert splits.test.ids[0] == "test/0"


def test_repacked_cifar10_with_bytes_keys_and_4d_arrays_loads(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10_pickles(folder, bytes_keys=True)
    data, labels = cifar_batch(np.random.default_rng(5), 4)
    write_pickle(folder / "data_batch_3", {"data": data.reshape(4, 3, 32, 32), "labels": labels})
    splits = build_splits(cfg("cifar10", tmp_path))
    assert torch.equal(splits.train.images[8], torch.from_numpy(data[0]).view(3, 32, 32))


def test_cifar10_binary_release_loads(tmp_path):
    written = write_cifar10_binary(tmp_path / "cifar-10-batches-bin")
    splits = build_splits(cfg("cifar10", tmp_path))
    assert len(splits.train) == 15 and len(splits.test) == 3
    data, labels = written["test_batch.bin"]
    assert torch.equal(splits.test.images[1].flatten(), torch.from_numpy(data[1]))
    assert splits.test.targets.tolist() == labels.tolist()
    assert splits.info.classes == CIFAR10_NAMES


def test_cifar100_pickle_and_binary_releases_load(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "py" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, count in (("train", 5), ("test", 3)):
        data, labels = cifar_batch(rng, count, 100)
        write_pickle(
            folder / name,
            {"data": data, "fine_labels": labels.tolist(), "coarse_labels": [0] * count},
        )
    write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    splits = build_splits(cfg("cifar100", tmp_path / "py"))
    assert (len(splits.train), len(splits.test), len(splits.info.classes)) == (5, 3, 100)

    binary = tmp_path / "bin" / "cifar-100-binary"
    binary.mkdir(parents=True)
    for name, count in (("train.bin", 4), ("test.bin", 2)):
        data, fine = cifar_batch(rng, count, 100)
        coarse = np.zeros(count, np.uint8)
        np.concatenate([coarse[:, None], fine.astype(np.uint8)[:, None], data], axis=1).tofile(
            binary / name
        )
    (binary / "fine_label_names.txt").write_text("\n".join(f"c{i}" for i in range(100)))
    splits = build_splits(cfg("cifar100", tmp_path / "bin"))
    assert splits.test.targets.tolist() == fine.tolist()


def test_missing_data_set_is_one_line_error_naming_path_and_fixes(tmp_path, capsys):
    code = main(["data", "info", "cifar10", "--set", f"data.root={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(tmp_path / "cifar-10-batches-py") in err
    assert "--set data.root=" in err and "data.download=true" in err


def corrupt(folder: Path, name: str, content: bytes) -> None:
    (folder / name).write_bytes(content)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda f: corrupt(f, "data_batch_2", (f / "data_batch_2").read_bytes()[:500]),
            "truncated",
        ),
        (
            lambda f: write_pickle(
                f / "data_batch_2", {"data": np.zeros((4, 3000), np.uint8), "labels": [0] * 4}
            ),
            "shape",
        ),
        (
            lambda f: write_pickle(
                f / "data_batch_2", {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 10]}
            ),
            "out of range",
        ),
        (
            lambda f: write_pickle(
                f / "data_batch_2", {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1]}
            ),
            "4 images but 2 labels",
        ),
        (
            lambda f: write_pickle(f / "data_batch_2", {"data": np.zeros((4, 3072), np.uint8)}),
            "expected keys",
        ),
    ],
)
def test_damaged_cifar_pickle_is_user_error_naming_the_file(tmp_path, damage, message):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10_pickles(folder)
    damage(folder)
    with pytest.raises(UserError, match=message) as error:
        build_splits(cfg("cifar10", tmp_path))
    assert "data_batch_2" in str(error.value)


def test_pickle_with_foreign_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10_pickles(folder)
    write_pickle(
        folder / "data_batch_1",
        {"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": Path("/")},
    )
    with pytest.raises(UserError, match=r"data_batch_1.*refusing"):
        build_splits(cfg("cifar10", tmp_path))


def test_binary_batch_of_wrong_size_is_user_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar10_binary(folder)
    corrupt(folder, "data_batch_4.bin", b"\x01" * 3000)
    with pytest.raises(UserError, match=r"data_batch_4\.bin.*3073"):
        build_splits(cfg("cifar10", tmp_path))


# --- image folders -----------------------------------------------------------------------------


def test_image_folder_indexes_classes_and_skips_non_images_with_a_count(tmp_path, caplog):
    write_folder_split(tmp_path / "train", ["dog", "cat"], per_class=3)
    write_folder_split(tmp_path / "val", ["cat", "dog"], per_class=1)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "dog" / "labels.csv").write_text("a,b")
    with caplog.at_level(logging.WARNING):
        splits = build_splits(cfg("imagefolder", tmp_path))
    assert splits.info.classes == ["cat", "dog"]
    assert len(splits.train) == 6 and len(splits.test) == 2
    assert splits.train.targets.tolist() == [0, 0, 0, 1, 1, 1]
    assert any("skipped 2 files that are not images" in r.message for r in caplog.records)
    assert splits.train.ids[0].endswith("cat_0.JPEG")


def test_odd_colour_modes_are_converted_to_rgb(tmp_path):
    images = {
        "grey.png": Image.new("L", (8, 8), 77),
        "rgba.png": Image.new("RGBA", (8, 8), (10, 20, 30, 0)),
        "palette.png": Image.new("P", (8, 8), 3),
        "cmyk.jpg": Image.new("CMYK", (8, 8), (0, 255, 255, 0)),
        "sixteen.png": Image.fromarray(np.full((8, 8), 32768, np.uint16)),
    }
    for name, image in images.items():
        image.save(tmp_path / name)
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    for name in images:
        loaded = load_image(str(tmp_path / name))
        assert loaded.mode == "RGB" and loaded.size == (8, 8), name
    assert load_image(str(tmp_path / "grey.png")).getpixel((0, 0)) == (77, 77, 77)
    assert load_image(str(tmp_path / "rgba.png")).getpixel((0, 0)) == (10, 20, 30)
    # 16-bit values are scaled to 8 bits, not clipped at 255
    assert load_image(str(tmp_path / "sixteen.png")).getpixel((0, 0)) == (128, 128, 128)
    red = load_image(str(tmp_path / "cmyk.jpg")).getpixel((0, 0))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 broken jpeg"])
def test_unreadable_image_raises_unreadable_image_error_naming_it(tmp_path, content):
    path = tmp_path / "bad.JPEG"
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=r"bad\.JPEG"):
        load_image(str(path))


def test_truncated_jpeg_is_unreadable(tmp_path):
    path = write_image(tmp_path / "big.jpg", size=(64, 64), color=(1, 2, 3))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UnreadableImageError):
        load_image(str(path))


def test_empty_class_folder_is_user_error(tmp_path):
    write_folder_split(tmp_path / "train", ["a", "b"])
    write_folder_split(tmp_path / "val", ["a", "b"])
    (tmp_path / "train" / "c").mkdir()
    with pytest.raises(UserError, match=r"class folder .*train/c has no images"):
        build_splits(cfg("imagefolder", tmp_path))


def test_empty_split_is_user_error(tmp_path):
    write_folder_split(tmp_path / "train", ["a", "b"])
    (tmp_path / "val").mkdir()
    with pytest.raises(UserError, match="val has no class folders"):
        build_splits(cfg("imagefolder", tmp_path))


def test_missing_image_folder_names_the_layout(tmp_path):
    with pytest.raises(UserError, match=r"train/<class>/ .*--set data.root="):
        build_splits(cfg("imagefolder", tmp_path))


def test_val_class_unknown_to_train_is_user_error(tmp_path):
    write_folder_split(tmp_path / "train", ["a", "b"])
    write_folder_split(tmp_path / "val", ["a", "z"])
    with pytest.raises(UserError, match="val/z is not one of the train classes"):
        build_splits(cfg("imagefolder", tmp_path))


def test_imagenette_maps_wnids_to_names_and_reads_noisy_labels(tmp_path):
    folder = tmp_path / "imagenette2-160"
    wnids = sorted(IMAGENETTE_CLASSES)[:3]
    write_folder_split(folder / "train", wnids, per_class=2)
    write_folder_split(folder / "val", wnids, per_class=1)
    first = f"train/{wnids[0]}/{wnids[0]}_0.JPEG"
    lines = ["path,noisy_labels_0,noisy_labels_50,is_valid", f"{first},{wnids[0]},{wnids[2]},False"]
    (folder / "noisy_imagenette.csv").write_text("\n".join(lines) + "\n")
    clean = build_splits(cfg("imagenette", tmp_path))
    assert clean.info.classes == ["tench", "English springer", "cassette player"]
    noisy = build_splits(
        cfg(
            "imagenette",
            tmp_path,
            label_file="noisy_imagenette.csv",
            noisy_labels="noisy_labels_50",
        )
    )
    assert noisy.train.targets.tolist() == [2, 0, 1, 1, 2, 2]
    assert noisy.test.targets.tolist() == clean.test.targets.tolist()  # val keeps true labels
    with pytest.raises(UserError, match="noisy_labels_7"):
        build_splits(
            cfg(
                "imagenette",
                tmp_path,
                label_file="noisy_imagenette.csv",
                noisy_labels="noisy_labels_7",
            )
        )


def test_missing_imagenette_suggests_root_and_download(tmp_path):
    with pytest.raises(UserError, match=r"imagenette not found.*data.root=.*data.download=true"):
        build_splits(cfg("imagenette", tmp_path))


# --- ImageNet ----------------------------------------------------------------------------------

WNIDS = ["n01440764", "n01443537", "n01484850"]
# devkit ILSVRC2012_IDs are not in sorted-wnid order: here id 1 is the third sorted wnid
DEVKIT_IDS = {1: "n01484850", 2: "n01440764", 3: "n01443537"}


def write_devkit_meta(path: Path) -> None:
    fields = [
        "ILSVRC2012_ID",
        "WNID",
        "words",
        "gloss",
        "num_children",
        "children",
        "wordnet_height",
        "num_train_images",
    ]
    rows = np.zeros(4, dtype=[(f, object) for f in fields])
    for row, (idx, wnid) in enumerate(DEVKIT_IDS.items()):
        rows[row] = (idx, wnid, wnid, "", 0, np.zeros(0), 0, 1)
    rows[3] = (1001, "n00001740", "entity", "", 3, np.array([1, 2, 3]), 18, 0)  # a non-leaf
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"synsets": rows})


def write_flat_val(root: Path, labels: list[int]) -> None:
    for i, label in enumerate(labels):
        write_image(root / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG", color=(label * 50, 0, 0))


def test_imagenet_class_folder_layout_uses_sorted_wnid_indices(tmp_path):
    write_folder_split(tmp_path / "train", WNIDS[::-1], per_class=1)
    write_folder_split(tmp_path / "val", WNIDS, per_class=2)
    splits = build_splits(cfg("imagenet", tmp_path))
    assert splits.info.classes == WNIDS  # not 1000 classes: the wnids name themselves
    assert splits.test.targets.tolist() == [0, 0, 1, 1, 2, 2]
    assert splits.info.mean == (0.485, 0.456, 0.406)


def test_imagenet_flat_val_with_devkit_ground_truth_maps_ids_through_meta_mat(tmp_path):
    write_folder_split(tmp_path / "train", WNIDS, per_class=1)
    devkit_ids = [2, 1, 3, 1]
    write_flat_val(tmp_path, [0] * 4)
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    write_devkit_meta(data / "meta.mat")
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "\n".join(map(str, devkit_ids)) + "\n"
    )
    splits = build_splits(cfg("imagenet", tmp_path))
    # id 2 -> n01440764 (class 0), id 1 -> n01484850 (class 2), id 3 -> n01443537 (class 1)
    assert splits.test.targets.tolist() == [0, 2, 1, 2]
    assert splits.test.ids[0].endswith("ILSVRC2012_val_00000001.JPEG")


def test_imagenet_flat_val_with_caffe_val_txt_uses_zero_based_indices(tmp_path):
    write_folder_split(tmp_path / "train", WNIDS, per_class=1)
    write_flat_val(tmp_path, [0] * 3)
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (3, 1, 2)]
    (tmp_path / "val.txt").write_text(
        "".join(f"{n} {label}\n" for n, label in zip(names, [2, 0, 1], strict=True))
    )
    splits = build_splits(cfg("imagenet", tmp_path, label_file="val.txt"))
    assert splits.test.targets.tolist() == [0, 1, 2]


def test_devkit_ground_truth_without_meta_mat_is_user_error(tmp_path):
    write_folder_split(tmp_path / "train", WNIDS, per_class=1)
    write_flat_val(tmp_path, [0, 0])
    (tmp_path / "gt.txt").write_text("1\n2\n")
    with pytest.raises(UserError, match=r"meta\.mat"):
        build_splits(cfg("imagenet", tmp_path, label_file="gt.txt"))


@pytest.mark.parametrize("nested", [False, True])
def test_imagenet_val_not_split_into_class_folders_is_detected(tmp_path, nested):
    write_folder_split(tmp_path / "train", WNIDS, per_class=1)
    write_flat_val(tmp_path / "val" if nested else tmp_path, [0, 1, 2])
    with pytest.raises(UserError, match="not split into class folders") as error:
        build_splits(cfg("imagenet", tmp_path))
    assert "\n" not in str(error.value) and "data.label_file" in str(error.value)


def test_imagenet_names_come_from_torchvision_weights_metadata():
    names = imagenet_category_names()
    assert len(names) == 1000 and names[0] == "tench" and names[-1] == "toilet tissue"


# --- embedded sets -----------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_sized_as_configured():
    config = DataConfig(
        name="synthetic", num_classes=3, synthetic_size=20, synthetic_count=30, val_fraction=0
    )
    first, second = build_splits(config), build_splits(config)
    assert torch.equal(first.train.images, second.train.images)
    assert first.train.images.shape == (30, 3, 20, 20)
    assert first.train.targets.bincount().tolist() == [10, 10, 10]
    assert not torch.equal(first.train.images, first.test.images)
    # classes differ in colour: per-class mean images are far apart compared with the noise
    means = torch.stack(
        [first.train.images[first.train.targets == c].float().mean((0, 2, 3)) for c in range(3)]
    )
    assert torch.cdist(means, means).add(torch.eye(3) * 1e3).min() > 10


def test_synthetic_rejects_impossible_sizes():
    with pytest.raises(UserError, match="synthetic"):
        build_splits(DataConfig(name="synthetic", synthetic_size=2))


def test_digits_test_split_is_fixed_and_val_follows_split_seed():
    base = build_splits(DataConfig(name="digits", val_fraction=0.1, split_seed=0))
    other = build_splits(DataConfig(name="digits", val_fraction=0.1, split_seed=1))
    assert len(base.train) + len(base.val) == 1438 and len(base.test) == 359
    assert base.test.ids == other.test.ids
    assert base.val.ids != other.val.ids
    assert base.train.images.shape[1:] == (3, 32, 32) and base.train.images.dtype == torch.uint8
    assert base.test.targets.bincount().tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]


def test_unknown_data_set_lists_the_choices():
    with pytest.raises(UserError, match="cifar10") as error:
        build_splits(DataConfig(name="cifar"))
    for name in DATASETS.names():
        assert name in str(error.value)


def test_file_dataset_returns_rgb_pil_and_label(tmp_path):
    path = write_image(tmp_path / "x.png", mode="L", color=9)
    image, label = FileImageDataset([(str(path), 4)])[0]
    assert image.mode == "RGB" and label == 4
