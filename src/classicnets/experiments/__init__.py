"""Grids of runs: the ablation runner and the papers' claims as runnable experiments.

Importing the claims modules registers the experiments in EXPERIMENTS.
"""

from classicnets.experiments import alexnet_claims, vgg_claims
from classicnets.experiments.catalog import EXPERIMENTS, get_experiment

__all__ = ["EXPERIMENTS", "alexnet_claims", "get_experiment", "vgg_claims"]
