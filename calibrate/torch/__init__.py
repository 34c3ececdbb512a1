"""The torch side of calibrate (imports torch): losses and modules that use fitted calibrators.

Nothing in the numpy core imports this package.
"""

from .losses import LabelSmoothingLoss, label_smoothing_cross_entropy
from .modules import TemperatureModule

__all__ = ["LabelSmoothingLoss", "TemperatureModule", "label_smoothing_cross_entropy"]
