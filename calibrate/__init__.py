"""calibrate: honest classifier probabilities.

Imported here (numpy, scipy, scikit-learn only): :mod:`calibrate.metrics` (with its
submodules selective, ood, smooth, decomposition, uncertainty, summary),
:mod:`calibrate.calibrators`, :mod:`calibrate.conformal`, :mod:`calibrate.resampling`,
:mod:`calibrate.backends` (streaming; Dask on demand), :mod:`calibrate.io`. Imported on first
use: :mod:`calibrate.integrations` (``calibrate.CalibratedClassifier``: any scikit-learn
classifier, calibrated; torch: sampling from any ``nn.Module``, losses, calibrated models),
:mod:`calibrate.report` (matplotlib, Jinja2), :mod:`calibrate.apps` (the CIFAR-10 study, an
application of the library) and :mod:`calibrate.cli`.

Module paths of release 0.1 (``calibrate.selective``, ``calibrate.bootstrap``,
``calibrate.torch``, ...) still import, with a DeprecationWarning naming the new path.
"""

__version__ = "0.3.0"

import importlib as _importlib

from calibrate import _compat, backends, calibrators, conformal, groups, io, metrics, resampling
from calibrate._core.validation import CalibrationWarning, InputError
from calibrate.calibrators import (
    BBQ,
    BetaCalibration,
    Calibrator,
    DirichletCalibration,
    EnsembleTemperatureScaling,
    GroupedCalibrator,
    HistogramBinning,
    IsotonicCalibration,
    MatrixScaling,
    MulticalibrationPostprocessor,
    MultiLabelCalibrator,
    NotFittedError,
    PlattScaling,
    TemperatureScaling,
    VectorScaling,
    get_calibrator,
    load,
)
from calibrate.metrics import log_softmax, softmax
from calibrate.resampling import Interval, bootstrap_ci, paired_bootstrap_ci

_LAZY_SUBMODULES = ("integrations", "report", "apps", "cli")
_LAZY_NAMES = {"CalibratedClassifier": "calibrate.integrations.sklearn"}


def __getattr__(name):
    # PEP 562: heavy parts import on first access, so `import calibrate` needs neither torch
    # nor matplotlib; old module names resolve to their new place with a DeprecationWarning.
    if name in _LAZY_SUBMODULES:
        return _importlib.import_module(f"calibrate.{name}")
    if name in _LAZY_NAMES:
        return getattr(_importlib.import_module(_LAZY_NAMES[name]), name)
    if name in _compat.MOVED_TOP:
        return _compat.import_moved(f"calibrate.{name}", stacklevel=3)
    raise AttributeError(f"module 'calibrate' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES) | set(_LAZY_NAMES))


_compat.install()

__all__ = [
    "BBQ",
    "BetaCalibration",
    "CalibratedClassifier",
    "CalibrationWarning",
    "Calibrator",
    "DirichletCalibration",
    "EnsembleTemperatureScaling",
    "GroupedCalibrator",
    "HistogramBinning",
    "InputError",
    "Interval",
    "IsotonicCalibration",
    "MatrixScaling",
    "MultiLabelCalibrator",
    "MulticalibrationPostprocessor",
    "NotFittedError",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
    "apps",
    "backends",
    "bootstrap_ci",
    "calibrators",
    "cli",
    "conformal",
    "get_calibrator",
    "groups",
    "integrations",
    "io",
    "load",
    "log_softmax",
    "metrics",
    "paired_bootstrap_ci",
    "report",
    "resampling",
    "softmax",
]
