"""Shared test settings.

Tests use tiny models and batches, where a second OpenMP thread costs more in barriers than it
gains (and CI's 2 cores are shared with the subprocesses some tests start): one thread each.
"""

import torch

torch.set_num_threads(1)
