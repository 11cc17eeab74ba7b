"""Exact channel statistics and RGB PCA, their cache, and the `data stats` command."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classicnets.cli import main
from classicnets.config import DataConfig
from classicnets.data import FileImageDataset, TensorImageDataset, build_splits
from classicnets.data import stats as stats_module
from classicnets.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from classicnets.data.digits import DIGITS_MEAN, DIGITS_STD
from classicnets.data.stats import PixelSums, compute_stats, dataset_stats, lighting_components


def reference(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, population std and covariance straight from numpy in float64."""
    values = images.permute(1, 0, 2, 3).reshape(3, -1).double().numpy() / 255.0
    return values.mean(1), values.std(1), np.cov(values, bias=True)


def test_stats_of_a_known_tensor_match_numpy():
    images = torch.randint(
        0, 256, (7, 3, 5, 6), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    images[:, 2] = images[:, 0] // 2  # correlated channels
    result = compute_stats(
        "known", TensorImageDataset(images, torch.zeros(7), [str(i) for i in range(7)])
    )
    mean, std, covariance = reference(images)
    np.testing.assert_allclose(result.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(result.std, std, rtol=1e-12)
    assert (result.images, result.pixels) == (7, 210)
    values, vectors = np.linalg.eigh(covariance)
    np.testing.assert_allclose(result.eigenvalues, values[::-1], rtol=1e-9, atol=1e-15)
    for k in range(3):  # same directions up to sign
        assert abs(abs(np.dot(result.eigenvectors[k], vectors[:, 2 - k])) - 1) < 1e-9
    assert result.eigenvalues[0] >= result.eigenvalues[1] >= result.eigenvalues[2] >= 0


def test_stats_do_not_depend_on_chunking(monkeypatch):
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    dataset = TensorImageDataset(images, torch.zeros(10), [str(i) for i in range(10)])
    whole = compute_stats("x", dataset)
    monkeypatch.setattr(stats_module, "CHUNK_IMAGES", 3)
    assert compute_stats("x", dataset) == whole


def test_streamed_files_of_different_sizes_give_the_same_stats_as_tensors(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((5, 7), (9, 4), (3, 3))]
    samples = []
    for i, array in enumerate(arrays):
        Image.fromarray(array).save(tmp_path / f"{i}.png")
        samples.append((str(tmp_path / f"{i}.png"), 0))
    streamed = compute_stats("files", FileImageDataset(samples))
    sums = PixelSums()
    for array in arrays:
        sums.add_images(torch.from_numpy(array).permute(2, 0, 1))
    assert streamed == sums.result("files")
    assert streamed.pixels == 35 + 36 + 9


def test_digits_constants_match_the_data():
    measured, cached = dataset_stats(DataConfig(name="digits"))
    assert cached is None  # embedded sets are not cached anywhere
    assert tuple(round(v, 4) for v in measured.mean) == DIGITS_MEAN
    assert tuple(round(v, 4) for v in measured.std) == DIGITS_STD
    assert build_splits(DataConfig(name="digits")).info.mean == DIGITS_MEAN


def write_tiny_cifar(root: Path) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        content = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [1, 2]}
        (folder / name).write_bytes(pickle.dumps(content))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [str(i) for i in range(10)]})
    )


def test_stats_are_cached_beside_the_data_and_reused(tmp_path, monkeypatch):
    write_tiny_cifar(tmp_path)
    config = DataConfig(name="cifar10", root=str(tmp_path))
    first, path = dataset_stats(config)
    assert path == tmp_path / ".classicnets-stats-cifar10.json"
    assert json.loads(path.read_text())["images"] == 10

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(stats_module, "compute_stats", refuse)
    again, again_path = dataset_stats(config)
    assert again == first and again_path == path


def test_read_only_root_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    root = tmp_path / "shared"
    write_tiny_cifar(root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root.chmod(0o555)
    try:
        measured, path = dataset_stats(DataConfig(name="cifar10", root=str(root)))
    finally:
        root.chmod(0o755)
    assert path is not None and path.parent == tmp_path / "cache" / "classicnets"
    assert not (root / ".classicnets-stats-cifar10.json").exists()
    assert lighting_components(DataConfig(name="cifar10", root=str(root)))[
        0
    ].tolist() == pytest.approx(measured.eigenvalues)


def test_unwritable_caches_never_fail(tmp_path, monkeypatch):
    write_tiny_cifar(tmp_path)
    monkeypatch.setattr(stats_module, "_is_writable_dir", lambda path: False)
    monkeypatch.setattr(stats_module, "cache_paths", lambda cfg: [tmp_path / "ro" / "a.json"])
    (tmp_path / "ro").mkdir()
    measured, path = dataset_stats(DataConfig(name="cifar10", root=str(tmp_path)))
    assert path is None and measured.images == 10


def test_stats_command_prints_mean_and_std_with_four_decimals(tmp_path, capsys):
    write_tiny_cifar(tmp_path)
    assert main(["data", "stats", "cifar10", "--set", f"data.root={tmp_path}"]) == 0
    out = capsys.readouterr().out
    measured, _ = dataset_stats(DataConfig(name="cifar10", root=str(tmp_path)))
    expected = ", ".join(f"{v:.4f}" for v in measured.mean)
    assert f"mean (R, G, B): ({expected})" in out
    assert "std  (R, G, B): (" in out and "PCA eigenvalues" in out


def test_stats_command_rejects_unknown_keys_like_training(tmp_path, capsys):
    assert main(["data", "stats", "cifar10", "--set", "data.rot=x"]) == 2
    assert "data.root" in capsys.readouterr().err


@pytest.mark.slow
def test_real_cifar10_matches_the_published_statistics():
    root = os.environ.get("CLASSICNETS_DATA", "./data")
    config = DataConfig(name="cifar10", root=root)
    try:
        measured, _ = dataset_stats(config, recompute=True)
    except Exception:
        pytest.skip(f"no CIFAR-10 under {root} (set CLASSICNETS_DATA)")
    assert tuple(round(v, 4) for v in measured.mean) == CIFAR10_MEAN
    assert tuple(round(v, 4) for v in measured.std) == CIFAR10_STD
