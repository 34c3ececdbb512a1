"""MC dropout and ensemble sampling of the CIFAR-10 study's models (imports torch)."""

from __future__ import annotations

import numpy as np

from .._validation import InputError


def mc_dropout_logits(model, x_uint8, n_samples: int = 20, seed: int = 0, batch_size: int = 1000,
                      bf16: bool = True) -> np.ndarray:
    """(S, n, k) float32 logits from S stochastic passes: dropout active, batch norm in eval mode.

    If the model is a :class:`calibrate.cifar10.model.ResNet9` (its only dropout sits before the
    head), the features are computed once and only dropout + head are sampled: the same
    distribution as S full passes, at the cost of one.
    """
    import torch

    from .model import ResNet9
    from .training import to_tensor

    torch.manual_seed(seed)
    model.eval()
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    if not drops:
        raise InputError("model: MC dropout needs a model with dropout layers")
    head_only = isinstance(model, ResNet9) and not any(isinstance(m, torch.nn.Dropout) for m in model.features.modules())
    out = []
    with torch.no_grad():
        for i in range(0, len(x_uint8), batch_size):
            xb = to_tensor(x_uint8[i:i + batch_size])
            if head_only:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    f = model.features(xb)
                f = f.float()
                model.dropout.train()
                s = torch.stack([model.head(model.dropout(f)) * model.scale for _ in range(n_samples)])
                model.dropout.eval()
            else:
                for d in drops:
                    d.train()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    s = torch.stack([model(xb).float() for _ in range(n_samples)])
                for d in drops:
                    d.eval()
            out.append(s.float())
    return torch.cat(out, dim=1).numpy()


def ensemble_logits(models, x_uint8, batch_size: int = 1000, bf16: bool = True) -> np.ndarray:
    """(M, n, k) float32 logits of M models in eval mode."""
    from .training import predict_logits

    return np.stack([predict_logits(m, x_uint8, batch_size, bf16) for m in models])
