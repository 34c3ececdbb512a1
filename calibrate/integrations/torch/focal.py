"""Focal loss for calibration (Mukhoti et al. 2020; Lin et al. 2017), in torch.

    FL(z, y) = -(1 - p_y)^gamma log p_y,    p = softmax(z),

averaged over the batch. gamma = 0 is the cross-entropy. Mukhoti et al. ("Calibrating
deep neural networks using focal loss", NeurIPS 2020) show that it trains
better-calibrated networks, and propose the sample-dependent schedule FLSD-53:
gamma = 5 when p_y < 0.2, else 3 (``gamma="flsd-53"``). The threshold uses the
detached p_y (gamma is piecewise constant, so it contributes no gradient).

For two classes this is the binary focal loss of Lin et al. (2017, "Focal loss for
dense object detection") without the alpha weight: with x = z_1 - z_0, p = sigmoid(x),
p_t = p for y = 1 and 1 - p for y = 0, FL = -(1 - p_t)^gamma log p_t.

Numerics: log p_y is a log-softmax and 1 - p_y = -expm1(log p_y), so confident rows
(p_y -> 1) give exactly 0 and no cancellation; half precision logits are computed in
float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FLSD_53 = "flsd-53"


def _check(logits: torch.Tensor, labels: torch.Tensor):
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim != 2:
        raise ValueError(f"logits: expected a float tensor of shape (n, k), got "
                         f"{getattr(logits, 'dtype', type(logits).__name__)} {tuple(getattr(logits, 'shape', ()))}")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels: expected an integer tensor of shape ({logits.shape[0]},), got "
                         f"{tuple(getattr(labels, 'shape', ()))}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels: expected integer class indices, got dtype {labels.dtype}")


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float | str = 3.0,
               reduction: str = "mean") -> torch.Tensor:
    """Focal loss of logits (n, k) float and labels (n,) int; gamma >= 0 or "flsd-53".

    reduction: "mean" (default), "sum" or "none" (the (n,) per-sample losses).
    """
    _check(logits, labels)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    logp_y = F.log_softmax(z, dim=-1).gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    one_minus = -torch.expm1(logp_y)  # 1 - p_y without cancellation
    if isinstance(gamma, str):
        if gamma.lower() != FLSD_53:
            raise ValueError(f"gamma: expected a number >= 0 or {FLSD_53!r}, got {gamma!r}")
        g = torch.where(logp_y.detach().exp() < 0.2, 5.0, 3.0).to(z.dtype)
    else:
        if not float(gamma) >= 0:
            raise ValueError(f"gamma: expected a number >= 0 or {FLSD_53!r}, got {gamma!r}")
        g = float(gamma)
    # at p_y = 1 exactly, (1 - p)^gamma = 0 and its gradient is finite for gamma = 0 or >= 1
    # (for 0 < gamma < 1 the derivative of the power is infinite there)
    loss = -(one_minus**g) * logp_y
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


class FocalLoss(torch.nn.Module):
    """Module form of :func:`focal_loss` (``FocalLoss(gamma="flsd-53")`` for FLSD-53)."""

    def __init__(self, gamma: float | str = 3.0, reduction: str = "mean"):
        super().__init__()
        self.gamma = gamma
        self.reduction = reduction

    def forward(self, logits, labels):
        return focal_loss(logits, labels, self.gamma, self.reduction)

    def extra_repr(self):
        return f"gamma={self.gamma!r}, reduction={self.reduction!r}"
