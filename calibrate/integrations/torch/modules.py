"""torch modules that apply fitted calibrators inside torch code (imports torch)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from calibrate._core.validation import InputError
from calibrate.integrations.torch.inference import logits_of


class TemperatureModule(nn.Module):
    """logits -> logits / T, with T a (non-trainable) buffer; differentiable in the logits."""

    def __init__(self, temperature: float):
        super().__init__()
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float64))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature.to(logits.dtype)


class AffineModule(nn.Module):
    """logits -> logits * w + b (vector scaling) or logits @ W.T + b (matrix scaling)."""

    def __init__(self, weights, bias):
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(np.asarray(weights, dtype=np.float64)))
        self.register_buffer("bias", torch.as_tensor(np.asarray(bias, dtype=np.float64)))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        w, b = self.weights.to(logits.dtype), self.bias.to(logits.dtype)
        return logits * w + b if w.ndim == 1 else logits @ w.T + b


class _NumpyCalibrator(nn.Module):
    """Any fitted calibrator through its numpy ``predict_log_proba`` (float64, not differentiable)."""

    def __init__(self, calibrator):
        super().__init__()
        self.calibrator = calibrator

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        z = logits.detach().to("cpu", torch.float64).numpy()
        lp = self.calibrator.predict_log_proba(z)
        return torch.as_tensor(np.asarray(lp), dtype=logits.dtype, device=logits.device)


def calibration_module(calibrator) -> nn.Module:
    """A module mapping logits (n, k) to calibrated logits (n, k).

    Temperature, vector and matrix scaling are exact torch ops (differentiable in the logits);
    every other calibrator goes through its numpy ``predict_log_proba`` on the CPU in float64
    (calibrated log-probabilities are valid logits), which is not differentiable.
    """
    if not hasattr(calibrator, "predict_log_proba"):
        raise InputError(f"calibrator: expected a fitted calibrate calibrator, got {type(calibrator).__name__}")
    if getattr(calibrator, "temperature_", None) is not None:
        return TemperatureModule(calibrator.temperature_)
    if type(calibrator).__name__ in ("VectorScaling", "MatrixScaling") and hasattr(calibrator, "weights_"):
        return AffineModule(calibrator.weights_, calibrator.bias_)
    # unfitted calibrators fail here, with their own NotFittedError, rather than at the first forward
    check = getattr(calibrator, "_check_fitted", None)
    if check is not None:
        check()
    return _NumpyCalibrator(calibrator)


class CalibratedModel(nn.Module):
    """``model`` followed by a fitted calibrator: forward returns calibrated logits or log-probs.

    output="logits": calibrated logits (n, k) (softmax gives the calibrated probabilities);
    output="log_probs": their log-softmax. The model's output may be a tensor, an object with
    ``.logits`` or a dict with ``"logits"``; all forward arguments are passed to the model.
    Temperature / vector / matrix scaling run as torch ops on the model's device; other
    calibrators use their numpy ``predict_log_proba`` (see :func:`calibration_module`).
    """

    def __init__(self, model: nn.Module, calibrator, output: str = "logits"):
        super().__init__()
        if output not in ("logits", "log_probs"):
            raise InputError(f"output: expected 'logits' or 'log_probs', got {output!r}")
        self.model = model
        self.calibration = calibration_module(calibrator)
        self.output = output

    def forward(self, *args, **kwargs) -> torch.Tensor:
        z = self.calibration(logits_of(self.model(*args, **kwargs)))
        return torch.log_softmax(z, dim=-1) if self.output == "log_probs" else z
