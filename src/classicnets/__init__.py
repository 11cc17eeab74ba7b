"""classicnets: paper-faithful AlexNet (Krizhevsky et al., 2012) and VGG (arXiv:1409.1556),
with ResNet-18 and GoogLeNet for comparison; training, evaluation, ablations and reports.

The Python API (docs/api.md): build_model, load_config, train -> Run, load_run, compare.
"""

__version__ = "0.1.0"

# Bound last: `train` the function must win over the classicnets.train package, which the
# api module has already imported (a package import binds its name only the first time).
from classicnets.api import (
    Comparison,
    Prediction,
    Report,
    Run,
    RunConfig,
    build_model,
    compare,
    load_config,
    load_run,
    train,
)

__all__ = [
    "Comparison",
    "Prediction",
    "Report",
    "Run",
    "RunConfig",
    "__version__",
    "build_model",
    "compare",
    "load_config",
    "load_run",
    "train",
]
