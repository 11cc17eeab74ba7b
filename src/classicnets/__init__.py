"""classicnets: paper-faithful AlexNet (Krizhevsky et al., 2012) and VGG (arXiv:1409.1556),
with ResNet-18 and GoogLeNet for comparison; training, evaluation, ablations and reports."""

# Huge pages and reuse of freed memory for CPU tensors (allocator.py), set before anything
# imports torch: PyTorch reads THP_MEM_ALLOC_ENABLE at its first allocation.
from classicnets import allocator

MALLOC = allocator.configure()

__version__ = "0.1.0"
