"""Mixup (Zhang, Cisse, Dauphin & Lopez-Paz 2018, "mixup: Beyond empirical risk
minimization", ICLR) as a batch transform for any model, in torch.

    lam ~ Beta(alpha, alpha),  perm a random permutation of the batch,
    x~ = lam x + (1 - lam) x[perm],   y~ = lam onehot(y) + (1 - lam) onehot(y[perm]),

one lam per batch, as in the paper's code. x may have any shape (n, ...): images,
sequences of embeddings, tabular rows; it must be floating point (integer token ids
cannot be mixed: mix their embeddings instead). Randomness comes only from the given
``torch.Generator`` (lam by inverse-CDF sampling of a uniform from it), so a seeded
generator gives the same batches on every run. Thulasidasan et al. (2019) found that
mixup-trained networks are better calibrated.

    batch = mixup(x, y, alpha=0.2, generator=g)
    loss = mixup_cross_entropy(model(batch.x), batch)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class MixedBatch(NamedTuple):
    """x: the mixed inputs (n, ...); y_a = y, y_b = y[perm]: (n,) int; lam: float; perm: (n,)."""

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: float
    perm: torch.Tensor

    def soft_targets(self, num_classes: int) -> torch.Tensor:
        """(n, num_classes) targets lam onehot(y_a) + (1 - lam) onehot(y_b), in x's float dtype."""
        dtype = self.x.dtype if self.x.is_floating_point() else torch.float32
        a = F.one_hot(self.y_a.long(), num_classes).to(dtype)
        b = F.one_hot(self.y_b.long(), num_classes).to(dtype)
        return self.lam * a + (1.0 - self.lam) * b


def sample_lambda(alpha: float, generator: torch.Generator | None = None) -> float:
    """lam ~ Beta(alpha, alpha) from one uniform of ``generator`` (inverse CDF); 1.0 when alpha <= 0."""
    if not alpha > 0:
        return 1.0
    from scipy.special import betaincinv

    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return float(betaincinv(alpha, alpha, u))


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0,
          generator: torch.Generator | None = None) -> MixedBatch:
    """Mix a batch: x (n, ...) float, y (n,) int class indices. alpha <= 0: no mixing (lam = 1)."""
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or not x.is_floating_point():
        raise TypeError(f"x: expected a floating-point tensor of shape (n, ...), got "
                        f"{getattr(x, 'dtype', type(x).__name__)}; mix embeddings, not integer ids")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1] or y.is_floating_point():
        raise ValueError(f"y: expected integer class indices of shape ({x.shape[0]},), got "
                         f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
    lam = sample_lambda(float(alpha), generator)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(x.shape[0], generator=generator, device=gen_device).to(x.device)
    mixed = x.mul(lam).add_(x[perm], alpha=1.0 - lam)
    return MixedBatch(mixed, y, y[perm], lam, perm)


def mixup_cross_entropy(logits: torch.Tensor, batch: MixedBatch) -> torch.Tensor:
    """lam CE(logits, y_a) + (1 - lam) CE(logits, y_b) = CE against the soft targets (batch mean)."""
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    return batch.lam * F.cross_entropy(z, batch.y_a.long()) + (1.0 - batch.lam) * F.cross_entropy(z, batch.y_b.long())


class Mixup:
    """Callable batch transform: ``Mixup(alpha, generator)(x, y) -> MixedBatch``."""

    def __init__(self, alpha: float = 1.0, generator: torch.Generator | None = None):
        self.alpha = alpha
        self.generator = generator

    def __call__(self, x, y) -> MixedBatch:
        return mixup(x, y, self.alpha, self.generator)

    def __repr__(self):
        return f"Mixup(alpha={self.alpha!r})"
