"""Logits from any ``torch.nn.Module`` over any iterable of batches (imports torch).

Batches may be (as a ``DataLoader`` yields them):

- ``x``                   a tensor (any shape and dtype): ``model(x)``, no labels;
- ``(x, y)`` / ``(x, y, ...)``  ``model(x)``; ``y`` are the labels; further items are ignored;
- a dict of tensors       ``model(**batch)`` without the ``labels_key`` entry, which holds the
                          labels (``labels_key="labels"`` for Hugging Face style models; with
                          ``labels_key=None`` the whole dict is passed and there are no labels).

Floating-point inputs are cast to the model's floating dtype (float64 tabular data into a
float32 model works); integer inputs (token ids, masks) are passed as they are. Model outputs
may be a tensor ``(n, k)``, an object with a ``.logits`` attribute (Hugging Face), or a dict
with a ``"logits"`` key. Everything runs under ``torch.no_grad()`` on ``device`` (``None``: the
model's own device, from its first parameter or buffer; the CPU if it has none); batches are
moved there; results come back as numpy arrays on the CPU: logits float32, labels as given.
No autocast unless asked for with ``precision="bf16"`` / ``"fp16"`` (or ``"auto"``, see
:mod:`calibrate.integrations.torch.precision`). The model's train/eval modes are restored afterwards, also
when an exception is raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from calibrate._core.validation import InputError
from calibrate.integrations.torch.precision import autocast, resolve_device, resolve_precision

#: every dropout module torch has; MC dropout switches exactly these to training mode
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.FeatureAlphaDropout)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter, else first buffer, else the CPU."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _float_dtype(model: nn.Module):
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def _move(obj, device, dtype):
    if torch.is_tensor(obj):
        if dtype is not None and obj.is_floating_point():
            return obj.to(device=device, dtype=dtype, non_blocking=True)
        return obj.to(device, non_blocking=True)
    if isinstance(obj, np.ndarray):
        return _move(torch.from_numpy(obj), device, dtype)
    return obj


def _split(batch, labels_key):
    """(args, kwargs, labels) of one batch."""
    if isinstance(batch, Mapping):
        if labels_key is not None and labels_key not in batch:
            raise InputError(f"batch: expected the labels under key {labels_key!r}, got keys {sorted(batch)}")
        kwargs = {k: v for k, v in batch.items() if k != labels_key}
        return (), kwargs, (batch[labels_key] if labels_key is not None else None)
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise InputError("batch: expected x, (x, y, ...) or a dict of tensors, got an empty sequence")
        return (batch[0],), {}, (batch[1] if len(batch) > 1 else None)
    return (batch,), {}, None


def logits_of(out) -> torch.Tensor:
    """The logits tensor of a model output: a tensor, ``out.logits`` or ``out["logits"]``."""
    if torch.is_tensor(out):
        z = out
    elif isinstance(out, Mapping) and "logits" in out:
        z = out["logits"]
    elif hasattr(out, "logits"):
        z = out.logits
    else:
        raise InputError(f"model output: expected a tensor, an object with .logits or a dict with 'logits', "
                         f"got {type(out).__name__}")
    if not torch.is_tensor(z) or z.ndim != 2:
        raise InputError(f"model output: expected (n, k) logits, got shape {tuple(getattr(z, 'shape', ()))}")
    return z


def _labels_out(chunks, n_batches, n):
    if not chunks:
        return None
    if len(chunks) != n_batches:
        raise InputError("loader: some batches had labels and others not")
    y = torch.cat([torch.as_tensor(c).reshape(-1).cpu() for c in chunks]).numpy()
    if y.shape[0] != n:
        raise InputError(f"labels: expected one per row of the logits ({n}), got {y.shape[0]}")
    return y


@contextlib.contextmanager
def _modes(models, dropout_on=False):
    """Eval mode (dropout modules optionally in train mode) inside; every module's mode restored after."""
    saved = [(m, m.training) for model in models for m in model.modules()]
    try:
        for model in models:
            model.eval()
            if dropout_on:
                for m in model.modules():
                    if isinstance(m, DROPOUT_TYPES):
                        m.train()
        yield
    finally:
        for m, mode in saved:
            m.training = mode


def _setup(model, device, precision):
    dev = model_device(model) if device is None else resolve_device(device)
    prec = resolve_precision(precision, dev)
    if device is not None and model_device(model) != dev:
        model.to(dev)
    return dev, prec


def _forward(model, batch, labels_key, dev, prec, dtype):
    args, kwargs, y = _split(batch, labels_key)
    args = tuple(_move(a, dev, dtype) for a in args)
    kwargs = {k: _move(v, dev, dtype) for k, v in kwargs.items()}
    with autocast(dev, prec):
        z = logits_of(model(*args, **kwargs))
    return z.float(), y


def predict_logits(model: nn.Module, loader, device=None, precision: str = "fp32", labels_key=None):
    """(logits (n, k) float32, labels (n,) or None) of ``model`` in eval mode over ``loader``.

    device: None (the model's device), "auto", "cpu", "cuda", or a torch.device; with a
    device given the model is moved there (and stays). precision: "fp32" (default, no
    autocast), "bf16", "fp16" (CUDA) or "auto".
    """
    dev, prec = _setup(model, device, precision)
    dtype = _float_dtype(model)
    out, ys, n_batches = [], [], 0
    with torch.no_grad(), _modes([model]):
        for batch in loader:
            z, y = _forward(model, batch, labels_key, dev, prec, dtype)
            out.append(z.cpu())
            n_batches += 1
            if y is not None:
                ys.append(y)
    if not out:
        raise InputError("loader: expected at least one batch, got none")
    logits = torch.cat(out).numpy()
    return logits, _labels_out(ys, n_batches, logits.shape[0])


def mc_dropout_logits(model: nn.Module, loader, n_samples: int = 20, device=None, seed: int = 0,
                      precision: str = "fp32", labels_key=None):
    """(samples (S, n, k) float32, labels (n,) or None): S stochastic passes (Gal & Ghahramani 2016).

    Only the dropout modules (:data:`DROPOUT_TYPES`) are in training mode; batch norm and
    everything else stay in eval mode, so running statistics are not touched. Every
    module's mode is restored afterwards, also on an exception. Each batch is passed S
    times in a row (the loader is iterated once). Seeded: the passes draw from a random
    stream seeded with ``seed`` inside ``torch.random.fork_rng``, so the same seed, model and
    batches give the same samples and the caller's global RNG state is left as it was.
    """
    if int(n_samples) < 1:
        raise InputError(f"n_samples: expected a positive integer, got {n_samples}")
    if not any(isinstance(m, DROPOUT_TYPES) for m in model.modules()):
        raise InputError("model: MC dropout needs a model with dropout modules (nn.Dropout*), found none")
    dev, prec = _setup(model, device, precision)
    dtype = _float_dtype(model)
    cuda = [dev] if dev.type == "cuda" else []
    out, ys, n_batches = [], [], 0
    with torch.no_grad(), _modes([model], dropout_on=True), torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        for batch in loader:
            args, kwargs, y = _split(batch, labels_key)
            args = tuple(_move(a, dev, dtype) for a in args)
            kwargs = {k: _move(v, dev, dtype) for k, v in kwargs.items()}
            with autocast(dev, prec):
                s = [logits_of(model(*args, **kwargs)).float().cpu() for _ in range(int(n_samples))]
            out.append(torch.stack(s))
            n_batches += 1
            if y is not None:
                ys.append(y)
    if not out:
        raise InputError("loader: expected at least one batch, got none")
    samples = torch.cat(out, dim=1).numpy()
    return samples, _labels_out(ys, n_batches, samples.shape[1])


def ensemble_logits(models, loader, device=None, precision: str = "fp32", labels_key=None):
    """(logits (M, n, k) float32, labels (n,) or None) of M models in eval mode.

    The loader is iterated once and every batch goes through all members (so a shuffling
    or one-shot loader still gives aligned rows). device=None: each member on its own device.
    """
    models = list(models)
    if not models:
        raise InputError("models: expected at least one model, got none")
    setups = [_setup(m, device, precision) + (_float_dtype(m),) for m in models]
    out, ys, n_batches = [[] for _ in models], [], 0
    with torch.no_grad(), _modes(models):
        for batch in loader:
            for i, (m, (dev, prec, dtype)) in enumerate(zip(models, setups)):
                z, y = _forward(m, batch, labels_key, dev, prec, dtype)
                out[i].append(z.cpu())
            n_batches += 1
            if y is not None:
                ys.append(y)
    if n_batches == 0:
        raise InputError("loader: expected at least one batch, got none")
    z = [torch.cat(o) for o in out]
    if len({t.shape for t in z}) != 1:
        raise InputError(f"models: expected the same (n, k) from every member, got {[tuple(t.shape) for t in z]}")
    logits = torch.stack(z).numpy()
    return logits, _labels_out(ys, n_batches, logits.shape[1])
