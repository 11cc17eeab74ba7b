"""classicnets: paper-faithful AlexNet (Krizhevsky et al., 2012) and VGG (arXiv:1409.1556),
with ResNet-18 and GoogLeNet for comparison; training, evaluation, ablations and reports.

The Python API (docs/api.md): build_model, load_config, train -> Run, load_run, compare.

The API is imported on first use, not here: `import classicnets.models` or `classicnets
--help` then loads neither matplotlib nor the data transforms, nor (for --help) torch.
"""

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

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


def _api() -> types.ModuleType:
    return importlib.import_module("classicnets.api")


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(_api(), name)
    raise AttributeError(f"module 'classicnets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """This package's module type: `classicnets.train` is always the API function.

    Python binds a subpackage as an attribute of its parent the first time it is imported, so
    importing classicnets.train.loop would otherwise replace the function by the package.
    """

    @property
    def train(self) -> Any:
        return _api().train

    @train.setter
    def train(self, value: Any) -> None:
        if not (isinstance(value, types.ModuleType) and value.__name__ == "classicnets.train"):
            raise AttributeError("classicnets.train is the API function and cannot be replaced")


sys.modules[__name__].__class__ = _Package
