"""CIFAR-10 images as batches for :mod:`calibrate.integrations.torch` (imports torch).

The study keeps its images as uint8 arrays (n, 32, 32, 3); :class:`ImageBatches` turns a
slice of them into normalised float32 (b, 3, 32, 32) tensors one batch at a time, so that
:func:`calibrate.integrations.torch.predict_logits` and friends see an ordinary iterable of ``x`` or
``(x, y)`` batches, as they would a ``DataLoader``.
"""

from __future__ import annotations

import numpy as np
import torch

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def to_tensor(x_uint8: np.ndarray, channels_last: bool = True) -> torch.Tensor:
    """(n, 32, 32, 3) uint8 -> (n, 3, 32, 32) float32 normalised (channels_last by default)."""
    x = torch.from_numpy(np.ascontiguousarray(x_uint8)).permute(0, 3, 1, 2).float().div_(255)
    x = (x - MEAN) / STD
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class ImageBatches:
    """An iterable of normalised image batches ``x`` (or ``(x, y)`` when labels are given).

    x_uint8: (n, 32, 32, 3) uint8; y: (n,) int or None. Re-iterable; ``len`` is the number
    of batches.
    """

    def __init__(self, x_uint8: np.ndarray, y=None, batch_size: int = 1000, channels_last: bool = True):
        self.x, self.y, self.batch_size, self.channels_last = x_uint8, y, int(batch_size), channels_last

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.x), self.batch_size):
            xb = to_tensor(self.x[i:i + self.batch_size], self.channels_last)
            if self.y is None:
                yield xb
            else:
                yield xb, torch.as_tensor(np.asarray(self.y[i:i + self.batch_size], dtype=np.int64))
