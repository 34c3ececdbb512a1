"""The torch side of calibrate (imports torch); nothing in the numpy core imports it.

- :mod:`.inference`  logits, MC dropout samples and ensemble logits from ANY ``nn.Module``
  over ANY iterable of batches (tensors, tuples, dicts of tensors), on any device;
- :mod:`.precision`  device and precision chosen for the machine (``auto``), autocast;
- :mod:`.modules`    fitted calibrators as modules; :class:`CalibratedModel` wraps a model;
- :mod:`.losses`     the label-smoothing loss.
"""

from .focal import FocalLoss, focal_loss
from .inference import (
    DROPOUT_TYPES,
    ensemble_logits,
    logits_of,
    mc_dropout_logits,
    model_device,
    predict_logits,
)
from .losses import LabelSmoothingLoss, label_smoothing_cross_entropy
from .mixup import MixedBatch, Mixup, mixup, mixup_cross_entropy
from .modules import AffineModule, CalibratedModel, TemperatureModule, calibration_module
from .precision import (
    autocast,
    choose_precision,
    cpu_info,
    measure_bf16_speedup,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "DROPOUT_TYPES",
    "AffineModule",
    "CalibratedModel",
    "FocalLoss",
    "LabelSmoothingLoss",
    "MixedBatch",
    "Mixup",
    "TemperatureModule",
    "autocast",
    "calibration_module",
    "choose_precision",
    "cpu_info",
    "ensemble_logits",
    "focal_loss",
    "label_smoothing_cross_entropy",
    "logits_of",
    "mc_dropout_logits",
    "measure_bf16_speedup",
    "mixup",
    "mixup_cross_entropy",
    "model_device",
    "predict_logits",
    "resolve_device",
    "resolve_precision",
]
