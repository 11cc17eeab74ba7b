"""classicnets: paper-faithful AlexNet (Krizhevsky et al., 2012) and VGG (arXiv:1409.1556),
with ResNet-18 and GoogLeNet for comparison; training, evaluation, ablations and reports."""

__version__ = "0.1.0"
