"""MC dropout and ensemble sampling of the study's models, through :mod:`calibrate.integrations.torch`.

For a :class:`~calibrate.apps.cifar10.model.ResNet9` (its only dropout sits before the head)
the features are computed once and only dropout + head are sampled: the same distribution
as S full passes, at the cost of one. Any other model gets S full passes
(:func:`calibrate.integrations.torch.mc_dropout_logits`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from calibrate.apps.cifar10.images import ImageBatches
from calibrate.apps.cifar10.model import ResNet9
from calibrate.integrations import torch as ctorch


class _Head(nn.Module):
    """features -> logits: the ResNet-9's dropout, head and fixed scale (float32)."""

    def __init__(self, model: ResNet9):
        super().__init__()
        self.dropout, self.head, self.scale = model.dropout, model.head, model.scale

    def forward(self, f):
        return self.head(self.dropout(f.float())) * self.scale


def _head_only(model) -> bool:
    return isinstance(model, ResNet9) and not any(isinstance(m, ctorch.DROPOUT_TYPES)
                                                  for m in model.features.modules())


def mc_dropout_logits(model, x_uint8, n_samples: int = 20, seed: int = 0, batch_size: int = 1000,
                      precision: str = "fp32", device=None) -> np.ndarray:
    """(S, n, k) float32 logits from S passes with dropout active, batch norm in eval mode."""
    batches = ImageBatches(x_uint8, batch_size=batch_size)
    if not _head_only(model):
        return ctorch.mc_dropout_logits(model, batches, n_samples, device=device, seed=seed,
                                        precision=precision)[0]
    feats, _ = ctorch.predict_logits(model.features, batches, device=device, precision=precision)
    head = _Head(model)
    f = torch.from_numpy(feats)
    f_batches = [f[i:i + 5000] for i in range(0, len(f), 5000)]
    return ctorch.mc_dropout_logits(head, f_batches, n_samples, device=device, seed=seed)[0]


def ensemble_logits(models, x_uint8, batch_size: int = 1000, precision: str = "fp32", device=None) -> np.ndarray:
    """(M, n, k) float32 logits of M models in eval mode."""
    return ctorch.ensemble_logits(models, ImageBatches(x_uint8, batch_size=batch_size), device=device,
                                  precision=precision)[0]
