"""classicnets: paper-faithful AlexNet (Krizhevsky et al., 2012) and VGG (arXiv:1409.1556),
with ResNet-18 and GoogLeNet for comparison; training, evaluation, ablations and reports."""

import os

__version__ = "0.1.0"

# On Linux, PyTorch's CPU allocator backs tensors over 2 MB with transparent huge pages when this
# is set (c10 alloc_cpu); a fresh 50 MB activation then costs 25 page faults instead of 12,800.
# Measured 1.16x per alexnet_cifar training step on CPU (benchmarks/RESULTS.md). It is read once,
# at torch's first allocation, so it only acts when classicnets is imported before torch (the CLI,
# the benchmarks). A value the user set wins; THP_MEM_ALLOC_ENABLE=0 turns it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
