"""Where a statistic is computed: the one dispatch between numpy and chunked arrays.

A numpy (or memory-mapped) array is reduced here, in row blocks. A chunked array (Dask)
is handed to the backend registered for it: :mod:`calibrate.backends.dask` registers
itself when :mod:`calibrate.backends` is imported (it is, by ``import calibrate``), so
nothing below the backends imports them. A backend gives three operations over row
chunks (every column of a row in one chunk):

- ``map_reduce(fn, x, labels, *args)``: the float64 sum over chunks of fn(x chunk, labels chunk, *args);
- ``map_concat(fn, x, labels, *args)``: the chunks' fn(...) arrays joined along the last axis;
- ``map_rows(fn, x)``: the lazy array of fn(x chunk) (row-wise maps, e.g. a log-softmax).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from calibrate._core import stats as _stats
from calibrate._core.blocks import is_dask, row_blocks
from calibrate._core.validation import InputError, check_logits_labels, check_probs_labels


class Backend(NamedTuple):
    """A chunked-array backend (see the module docstring)."""

    accepts: Callable
    map_reduce: Callable
    map_concat: Callable
    map_rows: Callable


_BACKENDS: list[Backend] = []


def register(backend: Backend) -> None:
    """Make ``backend`` compute the arrays it accepts (once per backend)."""
    if backend not in _BACKENDS:
        _BACKENDS.append(backend)


def backend_of(*arrays) -> Backend | None:
    """The backend of the first chunked array among ``arrays``, or None (all numpy)."""
    for b in _BACKENDS:
        if any(b.accepts(a) for a in arrays):
            return b
    if any(is_dask(a) for a in arrays):  # pragma: no cover (calibrate.backends registers it)
        raise InputError("a dask array needs calibrate.backends.dask (import calibrate)")
    return None


def check(x, labels, kind: str = "probs"):
    """(x, labels) validated as (n, k) probabilities or logits and (n,) labels; chunked
    arrays are returned as they are (their chunks are validated where they are reduced)."""
    if backend_of(x, labels) is not None:
        return x, labels
    return check_logits_labels(x, labels) if kind == "logits" else check_probs_labels(x, labels)


def _chunk_states(x, labels, stats, kind):
    """(sum of sizes,) float64: the states of ``stats`` over one chunk, validated here."""
    x, labels = check(x, labels, kind)
    return np.concatenate(_stats.accumulate(stats, x, labels, kind))


def _chunk_top_label(x, labels, kind):
    x, labels = check(x, labels, kind)
    return _stats.top_label_values(x, labels, kind)


def map_reduce(fn, x, labels, *args) -> np.ndarray:
    """fn(x, labels, *args) as a float64 array: called once on numpy arrays (fn walks its
    own row blocks), summed over row chunks of a chunked x. fn must be picklable."""
    backend = backend_of(x, labels)
    if backend is None:
        return np.asarray(fn(x, labels, *args), dtype=np.float64)
    return backend.map_reduce(fn, x, labels, *args)


def reduce(stats, x, labels, kind: str = "probs") -> list:
    """The states of ``stats`` (a sequence of statistics) over every row of x and labels.

    x: (n, k) probabilities (kind "probs") or logits (kind "logits"), numpy (validated by
    :func:`check`) or chunked; labels: (n,) int.
    """
    backend = backend_of(x, labels)
    if backend is None:
        return _stats.accumulate(stats, x, labels, kind)
    flat = backend.map_reduce(_chunk_states, x, labels, tuple(stats), kind)
    out, i = [], 0
    for s in stats:
        out.append(flat[i:i + s.size])
        i += s.size
    return out


def top_label_values(x, labels, kind: str = "probs") -> np.ndarray:
    """(2, n) float64 top-label confidence and correctness of every row (numpy or chunked)."""
    backend = backend_of(x, labels)
    if backend is None:
        return _stats.top_label_values(x, labels, kind)
    return backend.map_concat(_chunk_top_label, x, labels, kind)


def map_rows(fn, x):
    """fn applied to the rows of x: an (n, k) float64 array computed in row blocks, or the
    lazy array of a chunked x. fn: (m, k) -> (m, k) float64 (picklable for a cluster)."""
    backend = backend_of(x)
    if backend is not None:
        return backend.map_rows(fn, x)
    n, k = x.shape
    out = np.empty((n, k), dtype=np.float64)
    for s in row_blocks(n, k):
        out[s] = fn(x[s])
    return out
