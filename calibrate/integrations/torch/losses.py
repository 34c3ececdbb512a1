"""Calibration-aware training losses for torch (imports torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothing_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    """Cross-entropy against smoothed targets (Szegedy et al. 2016; Mueller et al. 2019).

    target = (1 - smoothing) * onehot(y) + smoothing / k, so
    loss = mean_i [(1 - smoothing) * (-log p_{i,y_i}) + smoothing * mean_j (-log p_ij)].
    Same as ``F.cross_entropy(..., label_smoothing=smoothing)``; computed in float32 or
    wider whatever the logits' dtype. logits: (n, k); labels: (n,) int.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing: expected a value in [0, 1), got {smoothing}")
    logp = F.log_softmax(logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits, dim=-1)
    nll = -logp.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    uniform = -logp.mean(dim=-1)
    return ((1.0 - smoothing) * nll + smoothing * uniform).mean()


class LabelSmoothingLoss(torch.nn.Module):
    """Module form of :func:`label_smoothing_cross_entropy`."""

    def __init__(self, smoothing: float = 0.1):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits, labels):
        return label_smoothing_cross_entropy(logits, labels, self.smoothing)
