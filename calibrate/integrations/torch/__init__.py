"""The torch side of calibrate (imports torch); nothing in the numpy core imports it.

- :mod:`.inference`  logits, MC dropout samples and ensemble logits from ANY ``nn.Module``
  over ANY iterable of batches (tensors, tuples, dicts of tensors), on any device;
- :mod:`.precision`  device and precision chosen for the machine (``auto``), autocast;
- :mod:`.modules`    fitted calibrators as modules; :class:`CalibratedModel` wraps a model;
- :mod:`.losses`     the label-smoothing loss.
"""

from calibrate.integrations.torch.focal import FocalLoss, focal_loss
from calibrate.integrations.torch.inference import (
    DROPOUT_TYPES,
    ensemble_logits,
    logits_of,
    mc_dropout_logits,
    model_device,
    predict_logits,
)
from calibrate.integrations.torch.losses import LabelSmoothingLoss, label_smoothing_cross_entropy
from calibrate.integrations.torch.mixup import MixedBatch, Mixup, mixup, mixup_cross_entropy
from calibrate.integrations.torch.modules import (
    AffineModule,
    CalibratedModel,
    TemperatureModule,
    calibration_module,
)
from calibrate.integrations.torch.precision import (
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
