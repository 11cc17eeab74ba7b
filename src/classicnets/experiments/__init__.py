"""Grids of runs: the ablation runner and the papers' claims as runnable experiments."""
