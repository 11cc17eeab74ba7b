"""Seeds derived from (seed, epoch, batch or sample index), so each batch's randomness is a pure
function of its position and a resumed epoch replays the same batches bit for bit."""

import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    # SplitMix64 finaliser (Steele, Lea & Flood 2014): a cheap, well-mixed 64-bit hash
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def derive_seed(*values: int) -> int:
    """A 63-bit seed that depends on every value and their order."""
    state = 0
    for value in values:
        state = _splitmix64(state ^ (value & _MASK64))
    return state >> 1


def generator_for(*values: int) -> torch.Generator:
    """A CPU generator seeded from `values` (CPU so the draws are the same on every device)."""
    return torch.Generator().manual_seed(derive_seed(*values))
