"""calibrate: honest classifier probabilities.

Measure miscalibration (:mod:`calibrate.metrics`), fix it after training
(:mod:`calibrate.calibrators`), and report it. torch is imported only by the modules that
need it (training, uncertainty sampling, reading .pt files).
"""

__version__ = "0.1.0"

from . import conformal, decomposition, metrics, ood, selective, smooth
from ._validation import InputError
from .calibrators import (
    BBQ,
    Calibrator,
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

__all__ = [
    "BBQ",
    "Calibrator",
    "HistogramBinning",
    "InputError",
    "IsotonicCalibration",
    "MatrixScaling",
    "NotFittedError",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
    "conformal",
    "decomposition",
    "get_calibrator",
    "load",
    "log_softmax",
    "metrics",
    "ood",
    "selective",
    "smooth",
    "softmax",
]
