"""Post-hoc calibrators: one interface (fit / predict_proba / save), several families."""

from .base import Calibrator, NotFittedError, available_methods, get_calibrator, load
from .binning import BBQ, HistogramBinning, IsotonicCalibration
from .scaling import MatrixScaling, PlattScaling, TemperatureScaling, VectorScaling

__all__ = [
    "BBQ",
    "Calibrator",
    "HistogramBinning",
    "IsotonicCalibration",
    "MatrixScaling",
    "NotFittedError",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
    "available_methods",
    "get_calibrator",
    "load",
]
