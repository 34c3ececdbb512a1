"""Post-hoc calibrators: one interface (fit / predict_proba / save), several families."""

from calibrate.calibrators.base import (
    Calibrator,
    NotFittedError,
    available_methods,
    get_calibrator,
    load,
)
from calibrate.calibrators.beta import BetaCalibration
from calibrate.calibrators.binning import BBQ, HistogramBinning, IsotonicCalibration
from calibrate.calibrators.dirichlet import DirichletCalibration
from calibrate.calibrators.ets import EnsembleTemperatureScaling
from calibrate.calibrators.grouped import GroupedCalibrator
from calibrate.calibrators.multicalibration import MulticalibrationPostprocessor
from calibrate.calibrators.multilabel import MultiLabelCalibrator
from calibrate.calibrators.scaling import (
    MatrixScaling,
    PlattScaling,
    TemperatureScaling,
    VectorScaling,
)
from calibrate.metrics import decomposition as _decomposition

_decomposition.register_recalibration("temperature", TemperatureScaling)
_decomposition.register_recalibration("isotonic", IsotonicCalibration)

__all__ = [
    "BBQ",
    "BetaCalibration",
    "Calibrator",
    "DirichletCalibration",
    "EnsembleTemperatureScaling",
    "GroupedCalibrator",
    "HistogramBinning",
    "IsotonicCalibration",
    "MatrixScaling",
    "MultiLabelCalibrator",
    "MulticalibrationPostprocessor",
    "NotFittedError",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
    "available_methods",
    "get_calibrator",
    "load",
]
