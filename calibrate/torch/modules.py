"""torch modules that apply fitted calibrators inside torch code (imports torch)."""

from __future__ import annotations

import torch


class TemperatureModule(torch.nn.Module):
    """logits -> logits / T, with T a (non-trainable) buffer; differentiable in the logits."""

    def __init__(self, temperature: float):
        super().__init__()
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float64))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature.to(logits.dtype)
