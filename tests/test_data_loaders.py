"""The loader contract: shapes, order, determinism and resume, the in-memory path against the
PIL path, PCA lighting, test-time views, and unreadable images."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import chi2_contingency, chisquare

from classicnets.config import DataConfig
from classicnets.data import (
    DatasetInfo,
    FileImageDataset,
    TensorImageDataset,
    build_loader,
    build_splits,
    eval_transform,
    loader_from_transform,
    sample_ids,
)
from classicnets.data.batch_transforms import lighting_shift
from classicnets.data.memory_loader import MemoryLoader
from classicnets.data.recipes import AUGMENTATIONS
from classicnets.data.stream_loader import StreamLoader
from classicnets.data.transforms import PCALighting, resolve_recipe
from classicnets.errors import UserError

CPU = torch.device("cpu")
IDENTITY = DatasetInfo("synthetic", ["a", "b"], 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def dataset_of(images: torch.Tensor, labels: torch.Tensor | None = None) -> TensorImageDataset:
    labels = torch.zeros(len(images), dtype=torch.int64) if labels is None else labels
    return TensorImageDataset(images, labels, [f"train/{i}" for i in range(len(images))])


def loader(dataset, train=True, tta="none", info=IDENTITY, batch_size=50, seed=0, **changes):
    config = DataConfig(name="synthetic", **changes)
    return build_loader(
        dataset, config, info, train=train, batch_size=batch_size, seed=seed, device=CPU, tta=tta
    )


def all_batches(source, epoch=0, start_batch=0):
    return list(source.epoch(epoch, start_batch))


def synthetic_splits(**changes):
    config = DataConfig(
        name="synthetic", synthetic_count=64, num_classes=4, val_fraction=0.0, **changes
    )
    return config, build_splits(config)


# --- contract ----------------------------------------------------------------------------------


@pytest.mark.parametrize("in_memory", ["yes", "no"])
def test_batches_follow_the_contract(in_memory):
    config, splits = synthetic_splits(in_memory=in_memory)
    kinds = {"yes": MemoryLoader, "no": StreamLoader}
    train = build_loader(
        splits.train, config, splits.info, train=True, batch_size=10, seed=0, device=CPU
    )
    assert isinstance(train, kinds[in_memory])
    assert len(train) == 7 and train.num_samples == 64
    batches = all_batches(train)
    assert [len(y) for _, y in batches] == [10] * 6 + [4]  # the last partial batch is kept
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (10, 3, 32, 32) and y.dtype == torch.int64
    view_counts = {"flip": 2, "10crop": 10, "translate_flip": 6, "translate_flip_weighted": 6}
    for tta, views in view_counts.items():
        test = build_loader(
            splits.test,
            config,
            splits.info,
            train=False,
            batch_size=16,
            seed=0,
            device=CPU,
            tta=tta,
        )
        x, _ = next(iter(test.epoch(0)))
        assert x.shape == (16, views, 3, 32, 32)


def test_training_epoch_sees_every_image_once_and_eval_keeps_order():
    images = torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1).expand(64, 3, 8, 8).contiguous()
    data = dataset_of(images, torch.arange(64) % 2)
    info = DatasetInfo("synthetic", ["a", "b"], 8, (0.0,) * 3, (1.0,) * 3)
    seen = torch.cat(
        [x[:, 0, 0, 0] for x, _ in loader(data, augment="none", info=info, batch_size=10).epoch(0)]
    )
    values = (seen * 255).round().long()
    assert sorted(values.tolist()) == list(range(64)) and values.tolist() != list(range(64))
    ordered = torch.cat(
        [x[:, 0, 0, 0] for x, _ in loader(data, train=False, info=info, batch_size=10).epoch(0)]
    )
    assert (ordered * 255).round().long().tolist() == list(range(64))


def test_empty_split_cannot_be_loaded():
    empty = FileImageDataset([])
    with pytest.raises(UserError, match="no images"):
        loader(empty)


def test_digits_default_recipe_crops_without_flipping():
    splits = build_splits(DataConfig(name="digits"))
    recipe = resolve_recipe(DataConfig(name="digits"), splits.info)
    assert (recipe.augment, recipe.padding, recipe.flip) == ("crop_flip", 2, False)
    cifar = resolve_recipe(
        DataConfig(name="cifar10"), DatasetInfo("cifar10", [], 32, (0,) * 3, (1,) * 3)
    )
    assert (cifar.padding, cifar.flip) == (4, True)
    upsampled = resolve_recipe(
        DataConfig(name="cifar10", image_size=128),
        DatasetInfo("cifar10", [], 128, (0,) * 3, (1,) * 3),
    )
    assert upsampled.padding == 16


def test_in_memory_resize_is_batched_to_image_size():
    config, splits = synthetic_splits(image_size=64)
    assert splits.info.image_size == 64
    x, _ = next(
        iter(
            build_loader(
                splits.train, config, splits.info, train=True, batch_size=8, seed=0, device=CPU
            ).epoch(0)
        )
    )
    assert x.shape == (8, 3, 64, 64)


# --- determinism and resume --------------------------------------------------------------------


@pytest.mark.parametrize("augment", ["crop_flip", "random_resized_crop", "vgg", "alexnet"])
def test_memory_loader_resumes_mid_epoch_bit_for_bit(augment):
    size = 24 if augment in ("vgg", "alexnet", "random_resized_crop") else 0
    config, splits = synthetic_splits(augment=augment, pca_lighting=True, image_size=size)

    def make():
        return build_loader(
            splits.train, config, splits.info, train=True, batch_size=10, seed=5, device=CPU
        )

    full = all_batches(make(), epoch=3)
    resumed = all_batches(make(), epoch=3, start_batch=4)
    assert len(resumed) == 3
    for (x, y), (rx, ry) in zip(full[4:], resumed, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    other_epoch = all_batches(make(), epoch=4)
    assert not torch.equal(full[0][0], other_epoch[0][0])
    other_seed = build_loader(
        splits.train, config, splits.info, train=True, batch_size=10, seed=6, device=CPU
    )
    assert not torch.equal(full[0][0], next(iter(other_seed.epoch(3)))[0])


def test_memory_loader_does_not_touch_the_global_rng():
    config, splits = synthetic_splits()
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    all_batches(
        build_loader(
            splits.train, config, splits.info, train=True, batch_size=10, seed=0, device=CPU
        )
    )
    assert torch.equal(torch.rand(1), before)


def write_folder(root: Path, per_class: int = 4, size=(20, 14)) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(array).save(root / split / name / f"{i}.png")


def test_stream_loader_batches_do_not_depend_on_workers_and_resume(tmp_path):
    write_folder(tmp_path)
    config = DataConfig(
        name="imagefolder", root=str(tmp_path), val_fraction=0.0, image_size=12, pca_lighting=True
    )
    splits = build_splits(config)
    results = {}
    for workers in (0, 2):
        cfg = DataConfig(**{**config.__dict__, "num_workers": workers, "in_memory": "no"})
        source = build_loader(
            splits.train, cfg, splits.info, train=True, batch_size=3, seed=1, device=CPU
        )
        results[workers] = (
            all_batches(source, epoch=2),
            all_batches(source, epoch=2, start_batch=1),
        )
    full, resumed = results[0]
    assert len(full) == 3 and len(resumed) == 2
    for (x, y), (rx, ry) in zip(full[1:], resumed, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    for batch, other in zip(full, results[2][0], strict=True):
        assert torch.equal(batch[0], other[0]) and torch.equal(batch[1], other[1])


# --- the in-memory path has the PIL path's augmentation distribution ---------------------------


def position_image(side=32):
    """R = 100 + column, G = 100 + row: any output pixel tells where it came from."""
    rows, columns = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    image = torch.stack([100 + columns, 100 + rows, torch.full_like(rows, 50)])
    return image.to(torch.uint8)


def crop_offsets_and_flips(
    x: torch.Tensor, padding: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pixels = (x * 255).round().long()
    centre, right = pixels[:, :, 16, 16], pixels[:, :, 16, 17]
    flipped = (right[:, 0] - centre[:, 0]) < 0
    top = centre[:, 1] - 100 - 16 + padding
    left = centre[:, 0] - 100 - torch.where(flipped, 15, 16) + padding
    return top.numpy(), left.numpy(), flipped.numpy()


@pytest.mark.parametrize(("augment", "padding"), [("crop_flip", 4), ("translate_flip", 2)])
def test_crop_offsets_and_flips_match_the_pil_path(augment, padding):
    data = dataset_of(position_image().expand(900, 3, 32, 32).contiguous())
    draws, smallest = {}, {}
    for in_memory in ("yes", "no"):
        x = torch.cat(
            [
                x
                for x, _ in loader(
                    data, augment=augment, in_memory=in_memory, batch_size=300
                ).epoch(0)
            ]
        )
        draws[in_memory] = crop_offsets_and_flips(x, padding=padding)
        smallest[in_memory] = float(x.min()) * 255
    offsets = 2 * padding + 1
    for top, left, flipped in draws.values():
        for shifts in (top, left):
            counts = np.bincount(shifts, minlength=offsets)
            assert len(counts) == offsets and chisquare(counts).pvalue > 0.001  # uniform
        assert abs(flipped.mean() - 0.5) < 0.06
    for k in (0, 1):  # same distribution on both paths
        table = np.stack([np.bincount(draws[m][k], minlength=offsets) for m in ("yes", "no")])
        assert chi2_contingency(table).pvalue > 0.001
    assert abs(draws["yes"][2].mean() - draws["no"][2].mean()) < 0.08
    # crop_flip fills the border with zeros; translate_flip reflects real pixels (>= 50) there
    for value in smallest.values():
        assert value < 1 if augment == "crop_flip" else value > 49


# Output sides per recipe: a zoom in (vgg), out (alexnet, crop_flip) or either way.
RECIPE_TEST_SIDES = {"random_resized_crop": 20, "vgg": 16, "alexnet": 24, "crop_flip": 24}


@pytest.mark.parametrize("augment", sorted(AUGMENTATIONS))
def test_each_recipe_in_memory_matches_its_pil_form_in_mean_and_spread(augment):
    size = RECIPE_TEST_SIDES.get(augment, 32)
    data = dataset_of(position_image().expand(800, 3, 32, 32).contiguous())
    info = DatasetInfo("synthetic", ["a"], size, (0.0,) * 3, (1.0,) * 3)
    images = {}
    for in_memory in ("yes", "no"):
        batches = loader(
            data, augment=augment, in_memory=in_memory, info=info, batch_size=400
        ).epoch(0)
        images[in_memory] = torch.cat([x for x, _ in batches]) * 255
    memory, pil = images["yes"], images["no"]
    # per-pixel means over the draws agree (Monte Carlo error here is about 0.3 grey levels)
    assert (memory.mean(0) - pil.mean(0)).abs().mean() < 1.0
    # the spread of the source row seen at the centre (crop position and scale) agrees
    centre_rows = [im[:, 1, size // 2, size // 2] for im in (memory, pil)]
    assert abs(centre_rows[0].std() - centre_rows[1].std()) < 0.1 * centre_rows[1].std() + 0.3
    # the zoom: the row step between adjacent output pixels, i.e. the crop scale, agrees
    steps = [(im[:, 1, -1, :] - im[:, 1, 0, :]).mean() for im in (memory, pil)]
    assert abs(steps[0] - steps[1]) < 0.05 * abs(steps[1]) + 0.5


# --- PCA lighting and test-time views ----------------------------------------------------------

EIGENVALUES = torch.tensor([0.2, 0.02, 0.005])
EIGENVECTORS = torch.tensor([[0.58, 0.58, 0.57], [0.71, 0.0, -0.71], [0.41, -0.82, 0.41]])


def flips_by_image(source, epoch: int) -> dict[int, bool]:
    flips = {}
    for x, y in source.epoch(epoch):
        flipped = crop_offsets_and_flips(x, padding=2)[2]
        flips.update(zip(y.tolist(), flipped.tolist(), strict=True))
    return flips


def test_alternate_flip_mirrors_each_image_the_other_way_every_epoch():
    """arXiv:2404.00498 §3.6: epoch 1's flips drawn, each later epoch the opposite of the last,
    through the translate_flip crop; the labels name the images."""
    count = 200
    data = dataset_of(position_image().expand(count, 3, 32, 32).contiguous(), torch.arange(count))
    source = loader(data, batch_size=64, augment="translate_flip", flip_mode="alternate")
    first, second, third = (flips_by_image(source, epoch) for epoch in (1, 2, 3))
    assert len(first) == count and 70 < sum(first.values()) < 130
    assert all(second[i] != first[i] for i in range(count)) and third == first
    resumed = dict(first)  # a resumed epoch replays the same flips
    for x, y in source.epoch(1, start_batch=2):
        resumed.update(zip(y.tolist(), crop_offsets_and_flips(x, 2)[2].tolist(), strict=True))
    assert resumed == first
    other_seed = loader(
        data, batch_size=64, seed=1, augment="translate_flip", flip_mode="alternate"
    )
    assert flips_by_image(other_seed, 1) != first
    random = loader(data, batch_size=64, augment="translate_flip")
    assert any(flips_by_image(random, 2)[i] == first[i] for i in range(count))
    with pytest.raises(UserError, match="flip_mode=alternate needs the in-memory loader"):
        loader(data, augment="translate_flip", flip_mode="alternate", in_memory="no")


def test_pca_lighting_keeps_shape_and_mean_in_expectation():
    torch.manual_seed(0)
    image = torch.rand(3, 5, 6)
    lighting = PCALighting(EIGENVALUES, EIGENVECTORS)
    shifted = torch.stack([lighting(image) for _ in range(4000)])
    assert shifted.shape == (4000, 3, 5, 6)
    shift = shifted - image
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)  # per image
    assert shift.mean(0).abs().max() < 3 * 0.1 * 0.2 / 4000**0.5


def test_batched_lighting_draws_alpha_times_eigenvalue_along_each_component():
    shifts = lighting_shift(20000, EIGENVALUES, EIGENVECTORS, torch.Generator().manual_seed(0))
    assert shifts.shape == (20000, 3)
    projected = torch.linalg.solve(EIGENVECTORS.T, shifts.T).T  # back to per-component amounts
    torch.testing.assert_close(projected.std(0), 0.1 * EIGENVALUES, rtol=0.03, atol=0)
    assert projected.mean(0).abs().max() < 3 * 0.1 * 0.2 / 20000**0.5


def first_test_batch_and_views(tta: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The first plain test batch, and its test-time views from the in-memory ("yes") and the
    streaming ("no") loader."""
    config, splits = synthetic_splits()
    plain = next(
        iter(
            build_loader(
                splits.test, config, splits.info, train=False, batch_size=8, seed=0, device=CPU
            ).epoch(0)
        )
    )[0]
    views = {}
    for in_memory in ("yes", "no"):
        cfg = DataConfig(**{**config.__dict__, "in_memory": in_memory})
        source = build_loader(
            splits.test, cfg, splits.info, train=False, batch_size=8, seed=0, device=CPU, tta=tta
        )
        views[in_memory] = next(iter(source.epoch(0)))[0]
    return plain, views


def test_ten_crop_views_are_corners_centre_and_mirrors():
    plain, views = first_test_batch_and_views("10crop")
    ten = views["yes"]
    assert torch.equal(ten, views["no"])
    assert torch.equal(ten[:, 4], plain)  # the centre of the padded image is the image
    assert torch.equal(ten[:, 9], plain.flip(-1))
    assert not torch.equal(ten[:, 0], ten[:, 3])  # corners differ


def test_translate_flip_views_are_one_pixel_shifts_and_mirrors():
    plain, views = first_test_batch_and_views("translate_flip")
    six = views["yes"]
    assert six.shape == (8, 6, 3, 32, 32)
    torch.testing.assert_close(six, views["no"])
    assert torch.equal(six[:, 0], plain)
    up_left, down_right = six[:, 2], six[:, 4]
    assert torch.equal(up_left[..., 1:, 1:], plain[..., :-1, :-1])  # content moved by one pixel
    assert torch.equal(up_left[..., 0, 1:], plain[..., 1, :-1])  # the new top row reflects row 1
    assert torch.equal(down_right[..., :-1, :-1], plain[..., 1:, 1:])
    assert torch.equal(down_right[..., -1, :-1], plain[..., -2, 1:])
    for k in (0, 2, 4):
        assert torch.equal(six[:, k + 1], six[:, k].flip(-1))


# --- eval transforms ---------------------------------------------------------------------------


def test_eval_transform_matches_the_eval_loader(tmp_path):
    config, splits = synthetic_splits()
    transform = eval_transform(config, splits.info)
    first = next(
        iter(
            build_loader(
                splits.test, config, splits.info, train=False, batch_size=4, seed=0, device=CPU
            ).epoch(0)
        )
    )[0]
    assert torch.equal(transform(splits.test[0][0]), first[0])
    write_folder(tmp_path, size=(40, 30))
    folder_config = DataConfig(
        name="imagefolder", root=str(tmp_path), val_fraction=0.0, image_size=24, num_workers=0
    )
    folder = build_splits(folder_config)
    batch = next(
        iter(
            build_loader(
                folder.test,
                folder_config,
                folder.info,
                train=False,
                batch_size=4,
                seed=0,
                device=CPU,
            ).epoch(0)
        )
    )[0]
    image = Image.open(folder.test.samples[1][0]).convert("L")  # any mode is accepted
    assert eval_transform(folder_config, folder.info)(
        Image.open(folder.test.samples[1][0])
    ).shape == (3, 24, 24)
    assert torch.equal(
        eval_transform(folder_config, folder.info)(Image.open(folder.test.samples[1][0])), batch[1]
    )
    assert eval_transform(folder_config, folder.info)(image).shape == (3, 24, 24)
    assert sample_ids(folder.test)[1] == folder.test.samples[1][0]


def test_loader_from_transform_uses_the_given_torchvision_transform(tmp_path):
    from torchvision.models import AlexNet_Weights

    write_folder(tmp_path, per_class=2)
    splits = build_splits(DataConfig(name="imagefolder", root=str(tmp_path), val_fraction=0.0))
    transform = AlexNet_Weights.IMAGENET1K_V1.transforms()
    source = loader_from_transform(splits.test, transform, batch_size=3, device=CPU, num_workers=0)
    batches = all_batches(source)
    assert [x.shape for x, _ in batches] == [(3, 3, 224, 224), (1, 3, 224, 224)]
    expected = transform(Image.open(splits.test.samples[0][0]).convert("RGB"))
    torch.testing.assert_close(batches[0][0][0], expected)
    assert batches[0][1].tolist() == [0, 0, 1]


def test_image_folder_decoded_into_memory_matches_streaming(tmp_path):
    write_folder(tmp_path, size=(30, 30))
    base = DataConfig(
        name="imagefolder", root=str(tmp_path), val_fraction=0.0, image_size=16, num_workers=0
    )
    splits = build_splits(base)
    outputs = {}
    for in_memory in ("yes", "no"):
        cfg = DataConfig(**{**base.__dict__, "in_memory": in_memory})
        source = build_loader(
            splits.test, cfg, splits.info, train=False, batch_size=8, seed=0, device=CPU
        )
        outputs[in_memory] = torch.cat([x for x, _ in source.epoch(0)])
    assert isinstance(
        build_loader(splits.test, base, splits.info, train=False, batch_size=8, seed=0, device=CPU),
        MemoryLoader,
    )
    # PIL and torch resampling round differently by at most a grey level or two
    assert (outputs["yes"] - outputs["no"]).abs().max() < 3 / 255 / 0.224


# --- unreadable images -------------------------------------------------------------------------


def folder_with_bad_images(root: Path) -> None:
    write_folder(root)
    (root / "train" / "a" / "empty.png").write_bytes(b"")
    (root / "train" / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (root / "val" / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")


@pytest.mark.parametrize("in_memory", ["yes", "no"])
def test_unreadable_images_are_dropped_in_training_and_blank_in_eval(tmp_path, caplog, in_memory):
    folder_with_bad_images(tmp_path)
    config = DataConfig(
        name="imagefolder",
        root=str(tmp_path),
        val_fraction=0.0,
        image_size=8,
        num_workers=0,
        in_memory=in_memory,
    )
    splits = build_splits(config)
    assert len(splits.train) == 10 and len(splits.test) == 9
    with caplog.at_level(logging.WARNING):
        train = all_batches(
            build_loader(
                splits.train, config, splits.info, train=True, batch_size=4, seed=0, device=CPU
            )
        )
        test = all_batches(
            build_loader(
                splits.test, config, splits.info, train=False, batch_size=4, seed=0, device=CPU
            )
        )
    assert sum(len(y) for _, y in train) == 8
    assert sum(len(y) for _, y in test) == 9  # rows still match sample_ids
    assert any(
        "2 unreadable images" in r.message and "dropped" in r.message for r in caplog.records
    )
    assert any("1 unreadable images" in r.message for r in caplog.records)


def test_strict_mode_stops_on_the_first_unreadable_image_naming_it(tmp_path):
    folder_with_bad_images(tmp_path)
    config = DataConfig(
        name="imagefolder",
        root=str(tmp_path),
        val_fraction=0.0,
        image_size=8,
        num_workers=0,
        strict=True,
        in_memory="no",
    )
    splits = build_splits(config)
    with pytest.raises(UserError, match=r"(empty.png|broken.jpg).*data.strict=true"):
        all_batches(
            build_loader(
                splits.train, config, splits.info, train=True, batch_size=4, seed=0, device=CPU
            )
        )
