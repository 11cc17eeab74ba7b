"""Shared test settings.

Tests use tiny models and batches, where a second OpenMP thread costs more in barriers than it
gains (and CI's 2 cores are shared with the subprocesses some tests start): one thread each.
"""

from collections.abc import Callable

import pytest
import torch
from torch import nn

from classicnets.kernels import FAST_LAYERS, KernelTrials

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def kernel_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Kernel trials (classicnets/kernels/choice.py) cache into a fresh folder per test, never
    into the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("xdg_cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder / "classicnets"


def _trials_where(winner: str) -> KernelTrials:
    """In-memory kernel trials in which `winner` (a path's name, "torch" for torch's own, or
    "fast" for whichever of a layer's fast paths comes first) always times faster; every path
    still runs, so a trial that breaks one fails the test."""

    def timer(path: str, run: Callable[[], None]) -> float:
        run()
        return 1.0 if path == winner or (winner == "fast" and path != "torch") else 2.0

    return KernelTrials(machine={}, path=None, timer=timer)


@pytest.fixture
def fast_wins() -> Callable[[nn.Module], nn.Module]:
    """Attach trials in which every fast path wins to each fast layer of a module."""

    def attach(module: nn.Module) -> nn.Module:
        trials = _trials_where("fast")
        for layer in module.modules():
            if isinstance(layer, FAST_LAYERS):
                layer.__dict__["kernel_trials"] = trials
        return module

    return attach


@pytest.fixture
def trials_where() -> Callable[[str], KernelTrials]:
    """In-memory trials in which the given path ("fast" or "torch") always wins."""
    return _trials_where
