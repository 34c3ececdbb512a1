"""The torch side of calibrate (imports torch): losses and modules that use fitted calibrators.

Nothing in the numpy core imports this package.
"""

from .focal import FocalLoss, focal_loss
from .losses import LabelSmoothingLoss, label_smoothing_cross_entropy
from .mixup import MixedBatch, Mixup, mixup, mixup_cross_entropy
from .modules import TemperatureModule

__all__ = [
    "FocalLoss",
    "LabelSmoothingLoss",
    "MixedBatch",
    "Mixup",
    "TemperatureModule",
    "focal_loss",
    "label_smoothing_cross_entropy",
    "mixup",
    "mixup_cross_entropy",
]
