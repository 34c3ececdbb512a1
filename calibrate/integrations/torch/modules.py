"""torch modules that apply fitted calibrators inside torch code (imports torch).

Each calibrator's module is its own ``to_torch()`` (calibrate.calibrators.torch_modules);
:class:`CalibratedModel` puts one after a model.
"""

from __future__ import annotations

import torch
from torch import nn

from calibrate._core.validation import InputError
from calibrate.calibrators.torch_modules import AffineModule, TemperatureModule
from calibrate.integrations.torch.inference import logits_of, model_device

__all__ = ["AffineModule", "CalibratedModel", "TemperatureModule", "calibration_module"]


def calibration_module(calibrator) -> nn.Module:
    """``calibrator.to_torch()``: a module mapping logits (n, k) to calibrated logits (n, k).

    Softmax of its output is ``calibrator.predict_proba`` of the same logits, for every
    method (float64 inside; see calibrate.calibrators.torch_modules). Refuses anything
    that is not a calibrate calibrator; an unfitted one raises its NotFittedError here.
    """
    to_torch = getattr(calibrator, "to_torch", None)
    if to_torch is None or not hasattr(calibrator, "predict_log_proba"):
        raise InputError(f"calibrator: expected a fitted calibrate calibrator, got {type(calibrator).__name__}")
    return to_torch()


class CalibratedModel(nn.Module):
    """``model`` followed by a fitted calibrator: forward returns calibrated logits or log-probs.

    output="logits": calibrated logits (n, k) (softmax gives the calibrated probabilities,
    equal to ``calibrator.predict_proba`` of the model's logits); output="log_probs":
    their log-softmax. The model's output may be a tensor, an object with ``.logits`` or
    a dict with ``"logits"``; all forward arguments are passed to the model. The
    calibration module is ``calibrator.to_torch()``, placed on the model's device.
    """

    def __init__(self, model: nn.Module, calibrator, output: str = "logits"):
        super().__init__()
        if output not in ("logits", "log_probs"):
            raise InputError(f"output: expected 'logits' or 'log_probs', got {output!r}")
        self.model = model
        self.calibration = calibration_module(calibrator).to(model_device(model))
        self.output = output

    def forward(self, *args, **kwargs) -> torch.Tensor:
        z = self.calibration(logits_of(self.model(*args, **kwargs)))
        return torch.log_softmax(z, dim=-1) if self.output == "log_probs" else z
