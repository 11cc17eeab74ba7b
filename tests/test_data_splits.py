"""Seeded stratified splits: the val carve and the quick-run limits."""

import pytest
import torch

from classicnets.config import DataConfig
from classicnets.data import build_splits
from classicnets.data.splits import stratified_holdout, stratified_limit
from classicnets.errors import UserError

# 3 classes of unequal size: 50, 30, 20
TARGETS = torch.cat([torch.full((50,), 0), torch.full((30,), 1), torch.full((20,), 2)])[
    torch.randperm(100, generator=torch.Generator().manual_seed(3))
]


def test_holdout_is_reproducible_disjoint_and_complete():
    kept, held = stratified_holdout(TARGETS, 0.2, seed=7)
    again_kept, again_held = stratified_holdout(TARGETS, 0.2, seed=7)
    assert torch.equal(kept, again_kept) and torch.equal(held, again_held)
    assert torch.equal(torch.cat([kept, held]).sort().values, torch.arange(100))
    other_kept, _ = stratified_holdout(TARGETS, 0.2, seed=8)
    assert not torch.equal(kept, other_kept)


def test_holdout_takes_the_fraction_of_every_class():
    _, held = stratified_holdout(TARGETS, 0.2, seed=0)
    assert TARGETS[held].bincount().tolist() == [10, 6, 4]


def test_limit_per_class_caps_each_class():
    chosen = stratified_limit(TARGETS, limit=0, limit_per_class=25, seed=0)
    assert TARGETS[chosen].bincount().tolist() == [25, 25, 20]


def test_limit_shares_the_total_in_proportion_to_class_sizes():
    chosen = stratified_limit(TARGETS, limit=11, limit_per_class=0, seed=0)
    assert len(chosen) == 11
    assert TARGETS[chosen].bincount().tolist() == [6, 3, 2]  # 5.5, 3.3, 2.2 -> remainders
    assert len(chosen.unique()) == 11


def test_build_splits_carves_val_then_limits_train():
    config = DataConfig(name="synthetic", num_classes=4, synthetic_count=80, val_fraction=0.25)
    full = build_splits(config)
    assert len(full.train) == 60 and len(full.val) == 20
    assert full.val.targets.bincount().tolist() == [5, 5, 5, 5]
    assert set(full.train.ids).isdisjoint(full.val.ids)
    limited = build_splits(DataConfig(**{**config.__dict__, "limit_per_class": 3}))
    assert limited.train.targets.bincount().tolist() == [3, 3, 3, 3]
    assert limited.val.ids == full.val.ids  # limits never change val
    assert set(limited.train.ids) <= set(full.train.ids)


def test_val_fraction_zero_means_no_val_split():
    assert build_splits(DataConfig(name="synthetic", val_fraction=0.0)).val is None


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_val_fraction_out_of_range_is_user_error(fraction):
    with pytest.raises(UserError, match="val_fraction"):
        build_splits(DataConfig(name="synthetic", val_fraction=fraction))


def test_val_fraction_too_small_for_the_data_is_user_error():
    with pytest.raises(UserError, match="leaves no val images"):
        build_splits(
            DataConfig(name="synthetic", synthetic_count=8, num_classes=4, val_fraction=0.01)
        )
