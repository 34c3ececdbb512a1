"""Every input check and every user-facing error message.

Arrays are validated once, at the public boundary. A message names the argument (or
``file: field`` when the array came from a file), says what was expected and shows
what was received, so the command line can print it as one line.

torch tensors are accepted anywhere an array is, without importing torch here.
"""

from __future__ import annotations

import functools
import os
import warnings

import numpy as np

from calibrate._core.blocks import BLOCK_BYTES, all_finite, block_rows, one_blas_thread, row_blocks

MAX_BINS = 10_000  # n_bins / --bins: far above any useful binning, far below a memory problem
MAX_RESAMPLES = 100_000  # bootstrap resamples: 1,000 to 10,000 is the useful range
KINDS = ("logits", "probs", "log_probs")


class InputError(ValueError):
    """A user's input is not what was expected. The message is one line, for people."""


class CalibrationWarning(UserWarning):
    """A result may be wrong although nothing failed (a guess the caller should settle)."""


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


def check_1d_scores(x, name: str) -> np.ndarray:
    """(n,) float64 finite scores (a confidence or any score), n >= 1."""
    a = to_numpy(x, name)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"{name}: expected a non-empty 1-d array of scores, got shape {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected numeric scores, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise InputError(f"{name}: expected finite scores, got NaN or inf")
    return a


def check_scores(x, name: str = "logits", *, kind: str = "logits") -> np.ndarray:
    """Validate logits or probabilities: (n, k) float, or (n,) binary scores -> (n, 2).

    kind: "logits" (any finite real, or -inf for an absent option: probability exactly 0;
    a binary score s means logits [0, s]; +inf, NaN and a row with every entry -inf are
    refused, see :func:`check_logit_values`) or "probs" (in [0, 1], rows summing to 1; a
    binary score p means [1 - p, p]).
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
        if arr.size <= 1 << 20:  # small: numpy's row sums (no BLAS, so no thread-pool set-up on a first call)
            sums = arr.sum(axis=1)
        else:
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
    elif kind == "logits":
        check_logit_values(arr, name)
    elif not all_finite(arr):  # in row blocks: no (n, k) boolean temporary
        _raise_not_finite(arr, name, kind)
    return arr


def check_logit_values(arr: np.ndarray, name: str = "logits") -> None:
    """Refuse (n, k) logits holding NaN or +inf, or a row whose entries are all -inf.

    -inf is valid: an absent option (a question with 3 choices padded to 4), probability
    exactly 0. Finite arrays take one blockwise pass (no (n, k) boolean temporary); the
    entries are looked at only when that pass finds a non-finite value.
    """
    if all_finite(arr):
        return
    n, k = arr.shape
    for s in row_blocks(n, k, arr.itemsize, 16 * BLOCK_BYTES):
        b = arr[s]
        if np.isfinite(b).all():
            continue
        bad = np.isnan(b) | np.isposinf(b)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise InputError(
                f"{name}: expected finite logits or -inf (an absent option), got {b[i, j]} at row "
                f"{s.start + int(i)}, column {int(j)}; fix or drop that row")
        empty = np.isneginf(b).all(axis=1)
        if empty.any():
            rows = s.start + np.flatnonzero(empty)
            raise InputError(
                f"{name}: every logit is -inf (no option present) in row {rows[0]}"
                f"{f' and {rows.size - 1} more rows of this block' if rows.size > 1 else ''}; drop "
                "such rows")


def absent_mask(z: np.ndarray) -> np.ndarray | None:
    """(m, k) bool, True where a logit is -inf (an absent option), or None when none is."""
    if all_finite(z):
        return None
    mask = np.isneginf(z)
    return mask if mask.any() else None


def check_gold_finite(logits, labels, row_ids=None, name: str = "logits") -> None:
    """Refuse rows whose gold option's logit is -inf (probability 0: an infinite NLL).

    logits: (n, k) float, validated; labels: (n,) int in [0, k); row_ids: None or (n,)
    identifiers of the rows (e.g. ``ChoiceLogits.ids``), named in the message instead of
    row indices. The one-line InputError names the first 5 such rows and their count.
    """
    z = np.asarray(logits)
    y = np.asarray(labels)
    if z.ndim != 2 or all_finite(z):
        return
    n, k = z.shape
    bad = []
    for s in row_blocks(n, k, z.itemsize, 16 * BLOCK_BYTES):
        g = z[s][np.arange(s.stop - s.start), y[s]]
        bad.append(s.start + np.flatnonzero(np.isneginf(g)))
    bad = np.concatenate(bad) if bad else np.empty(0, dtype=np.intp)
    if bad.size == 0:
        return
    if row_ids is not None:
        shown = ", ".join(repr(row_ids[int(i)].item() if isinstance(row_ids[int(i)], np.generic)
                               else row_ids[int(i)]) for i in bad[:5])
        what = "ids" if bad.size > 1 else "id"
    else:
        shown = ", ".join(str(int(i)) for i in bad[:5])
        what = "rows" if bad.size > 1 else "row"
    more = f", ... ({bad.size} in all)" if bad.size > 5 else ""
    raise InputError(
        f"{name}: the gold option's logit is -inf (probability 0, an infinite NLL) in {bad.size} "
        f"row{'s' if bad.size != 1 else ''}: {what} {shown}{more}; the label names an absent option: fix the "
        "labels or drop those rows")


def _raise_not_finite(arr, name, kind):
    bad = np.argwhere(~np.isfinite(arr))[0]
    raise InputError(
        f"{name}: expected finite {kind}, got {arr[tuple(bad)]} at row, column {', '.join(map(str, bad))}; "
        "fix or drop that row"
    )


_LABEL_FIX = "; labels are class indices 0..k-1, one per class column: check the label column"


def check_labels(y, n: int | None, k: int | None, name: str = "labels") -> np.ndarray:
    """Validate class labels: (n,) integers in [0, k). Integral floats are accepted."""
    if not hasattr(y, "detach") and np.asarray(y).dtype.kind in "OSU":
        raise InputError(
            f"{name}: expected integer class indices 0..k-1, got labels of dtype {np.asarray(y).dtype} "
            "(e.g. strings); map them to 0..k-1 first (np.unique(labels, return_inverse=True))"
        )
    arr = to_numpy(y, name)
    if arr.ndim != 1:
        hint = ("; an (n, L) 0/1 indicator matrix of a multi-label model? add --multilabel "
                "(calibrate.metrics.multilabel in Python)" if arr.ndim == 2 else "")
        raise InputError(f"{name}: expected a 1-d array of class indices, got shape {arr.shape}{hint}")
    if arr.size == 0:
        raise InputError(f"{name}: expected at least one label, got an empty array")
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name}: expected {n} labels (one per row), got {arr.shape[0]}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            i = int(np.argmax(~np.isfinite(arr)))
            raise InputError(f"{name}: expected integer class indices, got {arr[i]} at row {i}")
        frac = arr != np.round(arr)
        if frac.any():
            i = int(np.argmax(frac))
            raise InputError(f"{name}: expected integer class indices, got {float(arr[i])!r} at row {i}")
        big = np.abs(arr) >= (k if k is not None else 2.0**53)
        if big.any():  # checked before the cast: 1e20 would wrap around in int64
            i = int(np.argmax(big))
            want = f"in [0, {k}) for {k} classes" if k is not None else "below 2**53"
            raise InputError(f"{name}: expected class indices {want}, got {arr[i]:g} at row {i}{_LABEL_FIX}")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class indices, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        i = int(np.argmin(arr))
        raise InputError(f"{name}: expected class indices >= 0, got {lo} at row {i}{_LABEL_FIX}")
    if k is not None and hi >= k:
        i = int(np.argmax(arr))
        raise InputError(
            f"{name}: expected class indices in [0, {k}) for {k} classes, got {hi} at row {i}{_LABEL_FIX}"
        )
    return arr.astype(np.int64, copy=False)


def check_probs_labels(probs, labels, probs_name="probs", labels_name="labels"):
    p = check_scores(probs, probs_name, kind="probs")
    y = check_labels(labels, p.shape[0], p.shape[1], labels_name)
    return p, y


def check_logits_labels(logits, labels, logits_name="logits", labels_name="labels"):
    """Validated (n, k) logits (-inf allowed: an absent option) and (n,) labels; a row
    whose gold logit is -inf is refused (:func:`check_gold_finite`)."""
    z = check_scores(logits, logits_name, kind="logits")
    y = check_labels(labels, z.shape[0], z.shape[1], labels_name)
    check_gold_finite(z, y, name=logits_name)
    return z, y


def check_zero_one(a: np.ndarray, name: str, first_row: int = 0) -> np.ndarray:
    """(n, L) float64 of an indicator matrix ``a`` (numeric dtype, shape already checked) whose
    entries are all 0 or 1; else an InputError naming the first other value, its row
    (counted from ``first_row``) and label."""
    a = a.astype(np.float64)
    bad = (a != 0) & (a != 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{name}: expected 0 or 1 in the indicator matrix, got {a[i, j]:g} at row "
                         f"{first_row + i}, label {j}")
    return a


def check_n_bins(n_bins, name: str = "n_bins") -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"{name}: expected a positive integer, got {n_bins!r}")
    if n_bins > MAX_BINS:
        raise InputError(f"{name}: expected at most {MAX_BINS:,} bins (the limit), got {int(n_bins):,}; use fewer bins")
    return int(n_bins)


def check_n_resamples(n_resamples, name: str = "n_resamples", *, allow_zero: bool = False) -> int:
    """The number of bootstrap resamples: an integer in [1, MAX_RESAMPLES] (0 too with
    ``allow_zero``, for "no resampling")."""
    if allow_zero and not isinstance(n_resamples, bool) and isinstance(n_resamples, (int, np.integer)) \
            and n_resamples == 0:
        return 0
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        want = "a non-negative integer" if allow_zero else "a positive integer"
        raise InputError(f"{name}: expected {want}, got {n_resamples!r}")
    if n_resamples > MAX_RESAMPLES:
        raise InputError(f"{name}: expected at most {MAX_RESAMPLES:,} resamples (the limit), got "
                         f"{int(n_resamples):,}; 1,000 to 10,000 resamples give stable 95 % intervals")
    return int(n_resamples)


def check_confidence_level(level, name: str = "confidence_level") -> float:
    """The coverage of an interval: a number in (0, 1)."""
    try:
        v = float(level)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number in (0, 1), got {level!r}") from None
    if isinstance(level, bool) or not 0.0 < v < 1.0:
        raise InputError(f"{name}: expected a number in (0, 1), got {level!r}")
    return v


def renamed_keywords(**renames):
    """Decorator: keyword arguments renamed in the public API keep working for one release.

    renames: {old name: new name}. A call with an old name warns (DeprecationWarning,
    naming both) and is passed on under the new name; giving both is a TypeError. The
    wrapped function keeps its signature (``inspect.signature`` and scikit-learn's
    ``get_params`` read the new names).
    """
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__qualname__}() got both {old!r} (its old name) and {new!r}")
                    warnings.warn(f"{fn.__qualname__}: the keyword {old!r} is now {new!r}; {old!r} will be "
                                  "removed in the next release", DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        wrapper.renamed_keywords = dict(renames)
        return wrapper

    return decorate


def renamed_function(fn, old: str):
    """``fn`` under its old public name ``old``, for one release: each call warns
    (DeprecationWarning naming the new name) and then calls ``fn``."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.warn(f"{old} is now {fn.__name__}; {old} will be removed in the next release",
                      DeprecationWarning, stacklevel=2)
        return fn(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = old.rsplit(".", 1)[-1]
    return wrapper


def check_sample_weight(w, n: int, name: str = "sample_weight") -> np.ndarray:
    """(n,) float64 non-negative finite weights, not all zero."""
    arr = to_numpy(w, name)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected numeric weights, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise InputError(f"{name}: expected shape ({n},), one weight per row, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all() or (arr < 0).any():
        i = int(np.argmax(~np.isfinite(arr) | (arr < 0)))
        raise InputError(f"{name}: expected finite weights >= 0, got {arr[i]} at row {i}")
    if not arr.any():
        raise InputError(f"{name}: expected at least one positive weight, got all zeros")
    return arr


# ---------------------------------------------------------------------- logits or probabilities?
def as_logits(x, name: str = "logits", kind: str | None = None) -> np.ndarray:
    """Validated (n, k) logits from logits, probabilities or log-probabilities.

    kind: "logits", "probs" (converted to log p, valid logits: softmax(log p) = p),
    "log_probs" (rows with logsumexp 0, used as they are) or None: logits, with a
    CalibrationWarning when the values look like probabilities (every row in [0, 1] and
    summing to 1) or log-probabilities (every row's logsumexp is 0); the caller then
    states the kind. The guess is never acted on.
    """
    if kind is not None:
        check_choice(kind, "kind", KINDS)
    if kind == "probs":
        p = check_scores(x, name, kind="probs")
        return np.log(np.maximum(p.astype(np.float64), np.finfo(np.float64).tiny))
    z = check_scores(x, name, kind="logits")
    if kind == "log_probs":
        _check_log_probs(z, name)
    elif kind is None:
        if getattr(x, "ndim", None) == 1 or (not hasattr(x, "ndim") and np.ndim(x) == 1):
            looks = "probs1" if _looks_like_binary_probs(z[:, 1]) else None
        else:
            looks = looks_like(z)
        if looks == "probs1":
            warnings.warn(f"{name}: these binary scores look like probabilities of class 1 (every value in "
                          "[0, 1]), not logits; say which they are: --probs / kind='probs', or --logits / "
                          "kind='logits' to keep them as logits", CalibrationWarning, stacklevel=3)
        elif looks:
            what = {"probs": "probabilities (every row in [0, 1], summing to 1)",
                    "log_probs": "log-probabilities (every row's logsumexp is 0)"}[looks]
            flag = {"probs": "--probs / kind='probs'", "log_probs": "--log-probs / kind='log_probs'"}[looks]
            warnings.warn(f"{name}: these look like {what}, not logits; say which they are: {flag}, "
                          "or --logits / kind='logits' to keep them as logits", CalibrationWarning, stacklevel=3)
    return z


def looks_like(z: np.ndarray, sample: int = 10_000) -> str | None:
    """"probs", "log_probs" or None for (n, k) scores, judged on up to ``sample`` evenly
    strided rows (a guess for a warning, never for a decision)."""
    n, k = z.shape
    if k < 2:
        return None
    sample = max(1, min(sample, block_rows(k, 8, 16 * BLOCK_BYTES)))  # at most 16 blocks (8 MiB), whatever k
    rows = z[:: max(1, n // sample)][:sample]
    rows = rows.astype(np.float64)
    tol = 1e-3 if z.dtype == np.float32 else 1e-6
    lo, hi = rows.min(), rows.max()
    if lo >= 0 and hi <= 1 and np.all(np.abs(rows.sum(axis=1) - 1) <= tol):
        return "probs"
    if hi <= tol:
        m = rows.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(rows - m).sum(axis=1))
        if np.all(np.abs(lse) <= max(tol, 1e-5)):
            return "log_probs"
    return None


def _looks_like_binary_probs(s: np.ndarray, sample: int = 1 << 20) -> bool:
    """True for (n,) binary scores that look like P(class 1): every value (of up to
    ``sample`` evenly strided ones) in [0, 1], not all equal. A binary logit is in [0, 1]
    only where the model gives class 1 between 50 % and 73 %: never on every row."""
    rows = s[:: max(1, s.shape[0] // sample)]
    lo, hi = float(rows.min()), float(rows.max())
    return 0.0 <= lo < hi <= 1.0


def _check_log_probs(z, name):
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    tol = 1e-3 if z.dtype == np.float32 else 1e-6
    off = np.abs(lse) > tol
    if off.any():
        i = int(np.argmax(off))
        raise InputError(f"{name}: expected log-probabilities (each row's logsumexp 0), got row {i} with "
                         f"logsumexp {lse[i]:.6g}; if these are logits, pass them as logits")


# ---------------------------------------------------------------------- memory
def available_memory() -> int | None:
    """Bytes of memory this process can still use: MemAvailable, bounded by a cgroup limit."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                used = int(fh.read().strip())
            room = int(limit) - used
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def _gb(nbytes: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} bytes"


def check_allocation(nbytes: float, name: str, what: str) -> None:
    """Refuse, before allocating, ``nbytes`` that the machine cannot hold.

    name: the file and field; what: what is being allocated, for the message.
    """
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise InputError(f"{name}: {what} needs {_gb(nbytes)}, more than the {_gb(avail)} of memory "
                         "available; use a smaller file (fewer rows) or a machine with more memory")


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise InputError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
