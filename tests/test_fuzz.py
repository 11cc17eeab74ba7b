"""Malformed input fuzzed into the data and config layers: random bytes as CIFAR pickles and as
images, malformed pickled objects, random YAML as presets and as --set values, 1x1 and
10000x10000 images. Every case must end in a one-line UserError, a skipped image or a working
result, within a time limit: never a hang or a traceback.

Hypothesis runs derandomized (a fixed example sequence per test) with few examples, so the
file takes seconds and fails the same way on every machine.
"""

import io
import pickle
import signal
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from classicnets.config import RunConfig, config_to_dict, load_config, read_yaml
from classicnets.data import build_loader, build_splits
from classicnets.data.datasets import UnreadableImageError, load_image
from classicnets.errors import UserError

CPU = torch.device("cpu")
FUZZ = settings(
    max_examples=40,
    deadline=None,  # time_limit below bounds each example instead
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXAMPLE_SECONDS = 20


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in this (main) thread after `seconds`: a hang fails the test."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no result within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(action: Callable[[], Any]) -> Any:
    """Run `action`; a UserError must be one clear line. Any other exception fails the test."""
    with time_limit(EXAMPLE_SECONDS):
        try:
            return action()
        except UserError as error:
            message = str(error)
            assert message.strip() and "\n" not in message, repr(message)
            assert "Traceback" not in message
            return error


# --- CIFAR files -------------------------------------------------------------------------------

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def write_cifar_release(folder: Path) -> None:
    """A valid (tiny) CIFAR-10 python release: 4 images per batch."""
    folder.mkdir(parents=True, exist_ok=True)
    batch = {
        "data": np.random.default_rng(0).integers(0, 256, (4, 3072), dtype=np.uint8),
        "labels": [0, 1, 2, 3],
    }
    for name in CIFAR_FILES[:-1]:
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar_release(root / "cifar-10-batches-py")
    return root


def read_cifar_with(root: Path, name: str, content: bytes) -> Any:
    folder = root / "cifar-10-batches-py"
    write_cifar_release(folder)
    (folder / name).write_bytes(content)
    config = load_config(None, ["data.name=cifar10", f"data.root={root}", "data.val_fraction=0"])
    return outcome(lambda: build_splits(config.data))


def test_the_tiny_cifar_release_is_valid(cifar_root):
    config = load_config(
        None, ["data.name=cifar10", f"data.root={cifar_root}", "data.val_fraction=0"]
    )
    assert len(build_splits(config.data).test) == 4


@FUZZ
@given(content=st.binary(max_size=400), name=st.sampled_from(CIFAR_FILES))
def test_random_bytes_as_a_cifar_file_are_a_user_error(cifar_root, content, name):
    assert isinstance(read_cifar_with(cifar_root, name, content), UserError)


ARRAY_SHAPES = st.sampled_from([(), (0,), (3,), (2, 3072), (0, 3072), (2, 3, 32, 32), (2, 5, 7)])
ARRAY_DTYPES = st.sampled_from(["uint8", "int64", "int8", "float32", "bool", "object", "U2"])
ARRAYS = st.builds(
    lambda shape, dtype, fill: np.full(shape, fill).astype(dtype),
    ARRAY_SHAPES,
    ARRAY_DTYPES,
    st.integers(-300, 300),
)
VALUES = st.one_of(
    ARRAYS,
    st.lists(st.integers(-3, 300), max_size=6),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.none(),
    st.floats(allow_nan=True),
)
PICKLED = st.one_of(
    st.dictionaries(
        st.sampled_from(["data", "labels", b"data", b"labels", "label_names", "other", 7]),
        VALUES,
        max_size=3,
    ),
    VALUES,
)


@FUZZ
@given(value=PICKLED, name=st.sampled_from(["data_batch_2", "batches.meta"]))
def test_malformed_objects_in_a_cifar_pickle_are_a_user_error_or_data(cifar_root, value, name):
    result = read_cifar_with(cifar_root, name, pickle.dumps(value))
    if not isinstance(result, UserError):  # it happened to be valid: then it is usable data
        assert result.train.images.dtype == torch.uint8


def test_an_empty_integer_cifar_batch_is_a_user_error(cifar_root):
    empty = {"data": np.zeros((0, 3072), dtype=np.int64), "labels": []}
    assert isinstance(read_cifar_with(cifar_root, "data_batch_1", pickle.dumps(empty)), UserError)


# --- image files -------------------------------------------------------------------------------

# extensions an image folder lists (GIF is not one: it would be skipped as "not an image")
IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "tif": "TIFF", "webp": "WEBP"}


def encoded(extension: str, size: tuple[int, int] = (24, 20), seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, IMAGE_FORMATS[extension])
    return buffer.getvalue()


def make_image_folder(root: Path, extra: dict[str, bytes]) -> Path:
    """train/ and val/ with classes a and b, two good images each, plus `extra` files
    (relative path -> content)."""
    for split in ("train", "val"):
        for label, name in enumerate(("a", "b")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(2):
                (folder / f"good{index}.png").write_bytes(encoded("png", seed=label * 2 + index))
    for relative, content in extra.items():
        (root / relative).write_bytes(content)
    return root


Batches = list[tuple[torch.Tensor, torch.Tensor]]


def epochs_of(root: Path, in_memory: str) -> tuple[Batches, Batches]:
    """The batches of one training epoch and of one evaluation pass over the folder."""
    config = load_config(
        None,
        [
            "data.name=imagefolder",
            f"data.root={root}",
            "data.image_size=32",
            "data.val_fraction=0",
            "data.num_workers=0",
            f"data.in_memory={in_memory}",
        ],
    )
    splits = build_splits(config.data)
    train, test = (
        build_loader(
            dataset, config.data, splits.info, train=is_train, batch_size=4, seed=0, device=CPU
        )
        for is_train, dataset in ((True, splits.train), (False, splits.test))
    )
    return list(train.epoch(1)), list(test.epoch(0))


@st.composite
def damaged_images(draw: st.DrawFn) -> tuple[str, bytes]:
    """Random bytes, or a valid image truncated and/or with bytes overwritten."""
    extension = draw(st.sampled_from(sorted(IMAGE_FORMATS)))
    if draw(st.booleans()):
        return extension, draw(st.binary(max_size=300))
    data = bytearray(encoded(extension))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return extension, bytes(data)


@FUZZ
@given(damaged=damaged_images(), in_memory=st.sampled_from(["yes", "no"]))
def test_damaged_image_files_are_skipped_not_fatal(tmp_path_factory, damaged, in_memory):
    extension, content = damaged
    root = make_image_folder(tmp_path_factory.mktemp("folder"), {})
    for split in ("train", "val"):
        (root / split / "a" / f"damaged.{extension}").write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's warnings about the damage are expected
        result = outcome(lambda: epochs_of(root, in_memory))
    assert not isinstance(result, UserError)
    train, test = result
    for x, y in train + test:
        assert x.shape[1:] == (3, 32, 32) and len(x) == len(y) and torch.isfinite(x).all()
    assert 4 <= sum(len(y) for _, y in train) <= 5  # the damaged image is used or dropped
    assert sum(len(y) for _, y in test) == 5  # a damaged test image keeps its row (blank)


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG file whose header declares width x height RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    """A real 10000x10000 image (100M pixels: PIL warns, as a possible decompression bomb)."""
    buffer = io.BytesIO()
    Image.new("L", (10_000, 10_000), 90).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("in_memory", ["yes", "no"])
def test_1x1_and_10000x10000_images_train_and_evaluate(tmp_path, huge_png, in_memory):
    extra = {
        "train/a/huge.png": huge_png,
        "train/b/tiny.png": encoded("png", size=(1, 1)),
        "val/b/tiny.png": encoded("png", size=(1, 1), seed=5),
    }
    root = make_image_folder(tmp_path, extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        result = outcome(lambda: epochs_of(root, in_memory))
    assert not isinstance(result, UserError)
    train, test = result
    assert sum(len(y) for _, y in train) == 6 and sum(len(y) for _, y in test) == 5
    assert all(x.shape[1:] == (3, 32, 32) and torch.isfinite(x).all() for x, _ in train + test)


def test_an_image_declaring_a_billion_pixels_is_unreadable(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(40_000, 30_000))
    with pytest.raises(UnreadableImageError):
        load_image(str(path))


# --- presets and --set values ------------------------------------------------------------------

SECTIONS = ("model", "data", "optim", "schedule", "train")
KNOWN_KEYS = sorted({key for section in config_to_dict(RunConfig()).values() for key in section})
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["cpu", "sgd", "5e-4", "1e400", "[1, 2]", "yes", "none", "alexnet"]),
)
TREES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from([*SECTIONS, *KNOWN_KEYS, "bogus"]), children, max_size=4)
    ),
    max_leaves=12,
)


def load_preset_text(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "preset.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return outcome(lambda: load_config(str(path)))


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text_as_a_preset_is_a_user_error_or_a_config(tmp_path, text):
    result = load_preset_text(tmp_path, text)
    assert isinstance(result, UserError | RunConfig)


@FUZZ
@given(tree=st.dictionaries(st.sampled_from([*SECTIONS, "bogus"]), TREES, max_size=4))
def test_random_yaml_trees_as_presets_give_a_user_error_or_a_config_that_round_trips(
    tmp_path, tree
):
    result = load_preset_text(tmp_path, yaml.safe_dump(tree))
    assert isinstance(result, UserError | RunConfig)
    if isinstance(result, RunConfig):
        path = tmp_path / "resolved.yaml"
        path.write_text(yaml.safe_dump(config_to_dict(result)))
        assert load_config(str(path)) == result


@FUZZ
@given(
    overrides=st.lists(
        st.one_of(
            st.text(max_size=30),
            st.builds(
                lambda section, key, value: f"{section}.{key}={value}",
                st.sampled_from(SECTIONS),
                st.sampled_from(KNOWN_KEYS),
                st.text(max_size=12) | st.sampled_from(["[", "{a: 1}", "- x", "!!binary x"]),
            ),
        ),
        max_size=4,
    )
)
def test_random_set_values_give_a_user_error_or_a_config(overrides):
    result = outcome(lambda: load_config("smoke", overrides))
    assert isinstance(result, UserError | RunConfig)


def test_deeply_nested_yaml_is_a_user_error(tmp_path):
    # PyYAML composes nested collections recursively: 600 levels exceed Python's limit
    result = load_preset_text(tmp_path, "[" * 600 + "]" * 600)
    assert isinstance(result, UserError) and "nested too deeply" in str(result)
    assert isinstance(
        outcome(lambda: load_config("smoke", ["train.epochs=" + "[" * 600])), UserError
    )
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 600)
    with pytest.raises(UserError):
        read_yaml(path)


def test_yaml_booleans_given_for_a_choice_are_read_as_its_words(tmp_path):
    # YAML 1.1 reads yes/no/on/off as booleans; the choices spell them as words
    config = load_config(None, ["data.in_memory=yes", "train.amp=off", "train.channels_last=no"])
    assert (config.data.in_memory, config.train.amp, config.train.channels_last) == (
        "yes",
        "off",
        "no",
    )
    result = load_preset_text(tmp_path, "data: {in_memory: no}\ntrain: {amp: yes}\n")
    assert isinstance(result, UserError) and "train.amp must be one of" in str(result)
