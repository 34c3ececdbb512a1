"""Bin edges and bin indices: the one binning rule every binned metric uses (the per-bin
sums are :class:`calibrate._core.stats.Bins`).

The rule (that of Guo et al. 2017's reference code, which the published CIFAR figures
use): with edges ``e_0 = 0 < e_1 < ... < e_B = 1``, bin ``b`` holds the values ``v`` with
``e_b < v <= e_{b+1}``; the first bin also holds ``v = 0``. So a confidence of exactly
1.0 lies in the last bin (torchmetrics gives it a bin of its own: its issue 3510), and a
value exactly on an inner edge lies in the bin below it. Values are compared exactly
as given (a float32 0.2 is 0.2000000030 and lies above the edge 0.2).

scikit-learn's ``calibration_curve`` uses the other side (``e_b <= v < e_{b+1}``); the
two agree everywhere except on edges.

Equal-mass edges put the same number of values in each bin, up to ties: edge ``e_b`` is
the largest value of the ``b``-th group of the sorted values (groups as
``numpy.array_split`` makes them), so ties never straddle an edge and a bin may hold
more than its share, or none.
"""

from __future__ import annotations

import numpy as np


def equal_width_edges(n_bins: int) -> np.ndarray:
    """(n_bins + 1,) float64 edges 0, 1/B, ..., 1."""
    return np.linspace(0.0, 1.0, n_bins + 1)


def equal_mass_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """(n_bins + 1,) float64 edges with about len(values) / n_bins values per bin."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = v.size
    # the last index of each of the n_bins groups of np.array_split(v, n_bins)
    sizes = np.full(n_bins, n // n_bins)
    sizes[: n % n_bins] += 1
    last = np.cumsum(sizes) - 1
    inner = v[last[:-1][sizes[:-1] > 0]] if n else np.empty(0)
    inner = inner[(inner > 0) & (inner < 1)]
    inner = np.unique(inner)
    edges = np.concatenate([[0.0], inner, [1.0]])
    if edges.size < n_bins + 1:  # ties: pad with repeated 1.0 edges (empty bins at the end)
        edges = np.concatenate([edges, np.ones(n_bins + 1 - edges.size)])
    return edges


def make_edges(values: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    if binning == "width":
        return equal_width_edges(n_bins)
    return equal_mass_edges(values, n_bins)


def _float32_edges(edges: np.ndarray) -> np.ndarray:
    """float32 edges e' with (v > e') == (v > e) for every float32 v: each edge rounded down.

    Lets float32 values be binned without converting them to float64 (same bins, exactly).
    """
    e32 = edges.astype(np.float32)
    up = e32.astype(np.float64) > edges
    e32[up] = np.nextafter(e32[up], np.float32(-np.inf))
    return e32


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(...) int: the bin of each value under the rule above (any shape of values)."""
    values = np.asarray(values)
    n_bins = edges.size - 1
    width = equal_width_edges(n_bins)
    if values.dtype == np.float32:
        edges, width = _float32_edges(edges), _float32_edges(width)
    if values.dtype.kind == "f" and np.array_equal(edges, width):
        # Equal width: a multiplication guesses the bin to within one, and two exact
        # comparisons with the edges settle it (faster than a binary search).
        idx = (values * values.dtype.type(n_bins)).astype(np.intp)
        np.clip(idx, 0, n_bins - 1, out=idx)
        idx -= (values <= edges[idx]) & (idx > 0)
        idx += values > edges[idx + 1]
        return idx
    idx = np.searchsorted(edges, values, side="left") - 1
    np.clip(idx, 0, n_bins - 1, out=idx)
    return idx
