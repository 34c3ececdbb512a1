"""Every input check and every user-facing error message.

Arrays are validated once, at the public boundary. A message names the argument (or
``file: field`` when the array came from a file), says what was expected and shows
what was received, so the command line can print it as one line.

torch tensors are accepted anywhere an array is, without importing torch here.
"""

from __future__ import annotations

import numpy as np

from ._blocks import all_finite, one_blas_thread


class InputError(ValueError):
    """A user's input is not what was expected. The message is one line, for people."""


def to_numpy(x, name: str) -> np.ndarray:
    """numpy view of an array-like or a torch tensor (moved to the CPU, detached)."""
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        t = x.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        x = t.numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a numeric array, got {type(x).__name__} ({e})") from None
    if arr.dtype == object or arr.dtype.kind in "OSUV":
        raise TypeError(f"{name}: expected a numeric array, got an array of dtype {arr.dtype}")
    return arr


def check_scores(x, name: str = "logits", *, kind: str = "logits") -> np.ndarray:
    """Validate logits or probabilities: (n, k) float, or (n,) binary scores -> (n, 2).

    kind: "logits" (any finite real; a binary score s means logits [0, s]) or "probs"
    (in [0, 1], rows summing to 1; a binary score p means [1 - p, p]).
    Float32 and float64 are kept as they are (no copy); other dtypes become float64.
    """
    arr = to_numpy(x, name)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a float array of {kind}, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim == 1:
        if kind == "logits":
            arr = np.stack([np.zeros_like(arr), arr], axis=1)
        else:
            arr = np.stack([1.0 - arr, arr], axis=1)
    elif arr.ndim != 2:
        raise InputError(
            f"{name}: expected {kind} of shape (n, k) or (n,), got {arr.ndim} dimensions {arr.shape}"
        )
    n, k = arr.shape
    if n == 0:
        raise InputError(f"{name}: expected at least one row of {kind}, got an empty array {arr.shape}")
    if k == 0:
        raise InputError(f"{name}: expected at least one class column, got shape {arr.shape}")
    if kind == "probs":
        # Two passes: the row sums (NaN or inf in a row makes its sum non-finite) and the
        # minimum (rows of non-negative values summing to 1 are then at most 1).
        with one_blas_thread():  # a BLAS matrix-vector product: fast row sums (one thread: no stalls)
            sums = arr @ np.ones(k, dtype=arr.dtype)
        if not np.isfinite(sums).all():
            _raise_not_finite(arr, name, kind)
        lo = arr.min()
        if lo < 0:
            raise InputError(
                f"{name}: expected probabilities in [0, 1], got values down to {lo:g}; "
                "if these are logits, pass them as logits"
            )
        tol = 1e-3 if arr.dtype == np.float32 else 1e-6
        off = np.abs(sums - 1.0) > tol
        if off.any():
            i = int(np.argmax(off))
            hi = arr.max()
            hint = "; if these are logits, pass them as logits" if hi > 1 or sums[i] > 1.5 else ""
            raise InputError(
                f"{name}: expected probability rows that sum to 1, got row {i} summing to {sums[i]:.6g}{hint}"
            )
    elif not all_finite(arr):  # in row blocks: no (n, k) boolean temporary
        _raise_not_finite(arr, name, kind)
    return arr


def _raise_not_finite(arr, name, kind):
    bad = np.argwhere(~np.isfinite(arr))[0]
    raise InputError(
        f"{name}: expected finite {kind}, got {arr[tuple(bad)]} at row, column {', '.join(map(str, bad))}"
    )


def check_labels(y, n: int | None, k: int | None, name: str = "labels") -> np.ndarray:
    """Validate class labels: (n,) integers in [0, k). Integral floats are accepted."""
    arr = to_numpy(y, name)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-d array of class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: expected at least one label, got an empty array")
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name}: expected {n} labels (one per row), got {arr.shape[0]}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{name}: expected integer class indices, got NaN or inf")
        frac = arr != np.round(arr)
        if frac.any():
            i = int(np.argmax(frac))
            raise InputError(f"{name}: expected integer class indices, got {arr[i]!r} at row {i}")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class indices, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        i = int(np.argmin(arr))
        raise InputError(f"{name}: expected class indices >= 0, got {lo} at row {i}")
    if k is not None and hi >= k:
        i = int(np.argmax(arr))
        raise InputError(
            f"{name}: expected class indices in [0, {k}) for {k} classes, got {hi} at row {i}"
        )
    return arr.astype(np.int64, copy=False)


def check_probs_labels(probs, labels, probs_name="probs", labels_name="labels"):
    p = check_scores(probs, probs_name, kind="probs")
    y = check_labels(labels, p.shape[0], p.shape[1], labels_name)
    return p, y


def check_logits_labels(logits, labels, logits_name="logits", labels_name="labels"):
    z = check_scores(logits, logits_name, kind="logits")
    y = check_labels(labels, z.shape[0], z.shape[1], labels_name)
    return z, y


def check_n_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"n_bins: expected a positive integer, got {n_bins!r}")
    return int(n_bins)


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise InputError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
