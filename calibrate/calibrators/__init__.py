"""Post-hoc calibrators: one interface (fit / predict_proba / save), several families."""

from .base import Calibrator, NotFittedError, available_methods, get_calibrator, load
from .beta import BetaCalibration
from .binning import BBQ, HistogramBinning, IsotonicCalibration
from .dirichlet import DirichletCalibration
from .ets import EnsembleTemperatureScaling
from .scaling import MatrixScaling, PlattScaling, TemperatureScaling, VectorScaling

__all__ = [
    "BBQ",
    "BetaCalibration",
    "Calibrator",
    "DirichletCalibration",
    "EnsembleTemperatureScaling",
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
