"""calibrate: honest classifier probabilities.

The numpy core is imported here: :mod:`calibrate.metrics`, :mod:`calibrate.calibrators`,
:mod:`calibrate.bootstrap`, :mod:`calibrate.streaming`, :mod:`calibrate.uncertainty`,
:mod:`calibrate.io`. The parts with heavier dependencies are imported on first use:
:mod:`calibrate.sklearn` (``calibrate.CalibratedClassifier``: any scikit-learn classifier,
calibrated), :mod:`calibrate.report` (matplotlib, Jinja2), :mod:`calibrate.torch` (torch: sampling from
any ``nn.Module``, losses, calibrated-model wrapper), :mod:`calibrate.cifar10` (the CIFAR-10
study, an application of the library) and :mod:`calibrate.cli`.
"""

__version__ = "0.1.0"

import importlib as _importlib

from . import (
    bootstrap,
    calibrators,
    conformal,
    decomposition,
    io,
    metrics,
    ood,
    selective,
    smooth,
    streaming,
    uncertainty,
)
from ._validation import InputError
from .bootstrap import bootstrap_ci, paired_bootstrap_ci
from .calibrators import (
    BBQ,
    BetaCalibration,
    Calibrator,
    DirichletCalibration,
    EnsembleTemperatureScaling,
    HistogramBinning,
    IsotonicCalibration,
    MatrixScaling,
    NotFittedError,
    PlattScaling,
    TemperatureScaling,
    VectorScaling,
    get_calibrator,
    load,
)
from .metrics import log_softmax, softmax

_LAZY_SUBMODULES = ("sklearn", "report", "torch", "cifar10", "cli")
_LAZY_NAMES = {"CalibratedClassifier": "sklearn"}


def __getattr__(name):
    # PEP 562: `calibrate.torch` etc. import on first access, so `import calibrate` needs
    # neither torch nor matplotlib.
    if name in _LAZY_SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(_importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'calibrate' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES) | set(_LAZY_NAMES))


__all__ = [
    "BBQ",
    "BetaCalibration",
    "CalibratedClassifier",
    "Calibrator",
    "DirichletCalibration",
    "EnsembleTemperatureScaling",
    "HistogramBinning",
    "InputError",
    "IsotonicCalibration",
    "MatrixScaling",
    "NotFittedError",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
    "bootstrap",
    "bootstrap_ci",
    "calibrators",
    "conformal",
    "decomposition",
    "get_calibrator",
    "io",
    "load",
    "log_softmax",
    "metrics",
    "ood",
    "paired_bootstrap_ci",
    "selective",
    "smooth",
    "softmax",
    "streaming",
    "uncertainty",
]
