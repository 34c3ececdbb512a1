"""Smooth ECE and smoothed reliability diagrams (Blasiok & Nakkiran 2023).

"Smooth ECE: Principled reliability diagrams via kernel smoothing". For forecasts
f_i in [0, 1] of binary outcomes y_i, the residuals r_i = f_i - y_i are smoothed with a
Gaussian kernel of bandwidth sigma, reflected at 0 and 1:

    r_hat(t) = sum_i K(t, f_i) r_i / (sum_i K(t, f_i) + 1e-4),
    smECE_sigma = sum_t |r_hat(t)| d(t) / sum_t d(t),   d(t) = sum_i K(t, f_i) + 1e-4,

over an even grid t of max(round(10 / sigma), 200) points on [0, 1]. The automatic
bandwidth is the fixed point sigma* with smECE_sigma* = sigma*, found by bisection on
[0, 1] (10 halvings, sigma < 1e-3 counts as a fixed point) and smECE = smECE_sigma*.

Everything follows the reference implementation (``relplot``, Apple, 2023) so that the
numbers agree with its ``smECE`` to 1e-6 (tested): K is evaluated as in relplot, by
spreading each f_i linearly onto the two nearest of m = max(2000, round(20 / sigma)) // 2 + 1
grid nodes, convolving with the Gaussian density sampled on that grid, reflecting the
node values about both ends, and reading the result at t by linear interpolation.
relplot is never imported here (it changes matplotlib's global style on import).

Inputs: probs (n, k) with labels (n,) int -> top-label (confidence, correct); or (n,)
forecasts in [0, 1] with (n,) 0/1 outcomes (binary P(y = 1) with labels, or top-label
confidences with correctness). A 1-d input is NOT expanded to [1 - p, p] here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from calibrate._core.stats import top_label as _top_label
from calibrate._core.validation import (
    InputError,
    check_confidence_level,
    check_n_resamples,
    check_probs_labels,
    renamed_keywords,
    to_numpy,
)

_DENS_EPS = 1e-4
_DIRECT_MAX = 4001  # grids up to this many nodes are convolved directly, larger by FFT


def _forecasts(f, y):
    a = to_numpy(f, "probs")
    if a.ndim == 2:
        p, lab = check_probs_labels(a, y)
        conf, ok = _top_label(p, lab)
        return conf.astype(np.float64), ok.astype(np.float64)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"probs: expected (n, k) probabilities or (n,) forecasts, got shape {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"probs: expected numeric forecasts, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise InputError("probs: expected (n,) forecasts in [0, 1]")
    o = to_numpy(y, "labels")
    if o.shape != a.shape:
        raise InputError(f"labels: expected shape {a.shape} (one per forecast), got {o.shape}")
    if o.dtype.kind not in "fiub" or not np.isin(o, (0, 1)).all():
        raise InputError("labels: expected 0/1 outcomes for (n,) forecasts")
    return a, o.astype(np.float64)


def _check_sigma(sigma) -> float:
    s = float(sigma)
    if not (np.isfinite(s) and s > 0):
        raise InputError(f"sigma: expected a positive bandwidth, got {sigma!r}")
    return s


# --------------------------------------------------------------------- the kernel
def _n_nodes(sigma: float) -> int:
    return max(2000, round(20.0 / sigma)) // 2 + 1


def _fft_convolve_valid(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """np.convolve(a, k, "valid") for len(a) >= len(k), by FFT (numpy's; to rounding)."""
    full = a.size + k.size - 1
    size = 1 << (full - 1).bit_length()
    conv = np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(k, size), size)
    return conv[k.size - 1 : a.size]


def _smooth_on_grid(f: np.ndarray, w: np.ndarray, sigma: float, t: np.ndarray) -> np.ndarray:
    """sum_i w_i K_sigma(t, f_i) (reflected Gaussian, discretised as described above)."""
    m = _n_nodes(sigma)
    pos = f * (m - 1)
    lo = np.clip(pos.astype(np.intp), 0, m - 2)
    frac = pos - lo
    nodes = np.bincount(lo, weights=(1.0 - frac) * w, minlength=m)
    nodes += np.bincount(lo + 1, weights=frac * w, minlength=m)
    g = np.linspace(0.0, 1.0, m)
    ker = np.exp(-((g - 0.5) ** 2) / (2.0 * sigma**2)) / (np.sqrt(2.0 * np.pi) * sigma)
    ext = np.concatenate([nodes[::-1][:-1], nodes, nodes[::-1][1:]])
    conv = np.convolve(ext, ker, "valid") if m <= _DIRECT_MAX else _fft_convolve_valid(ext, ker)
    smoothed = conv[m // 2 : m // 2 + m]
    return np.interp(t, g, smoothed)


def _smooth_ratio(f, v, sigma, t):
    dens = _smooth_on_grid(f, np.ones_like(f), sigma, t) + _DENS_EPS
    return _smooth_on_grid(f, v, sigma, t) / dens, dens


def _smece_sigma(f, y, sigma):
    t = np.linspace(0.0, 1.0, max(round(10.0 / sigma), 200))
    r, dens = _smooth_ratio(f, f - y, sigma, t)
    return float(np.sum(np.abs(r) * dens) / np.sum(dens))


def _fixed_point(f, y, eps, refine):
    def ok(s):
        return s < eps or s < _smece_sigma(f, y, s)

    if ok(1.0):
        return 1.0
    hi, lo = 1.0, 0.0  # ok(lo) holds, ok(hi) fails
    for _ in range(refine):
        mid = (hi + lo) / 2.0
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return hi


# --------------------------------------------------------------------- public API
def smooth_ece(probs, labels, sigma: float | None = None, *, eps: float = 1e-3, refine: int = 10,
               return_sigma: bool = False):
    """Smooth ECE (Blasiok & Nakkiran 2023), in [0, 1].

    probs: (n, k) probabilities with labels (n,) int (top-label), or (n,) forecasts with
    (n,) 0/1 outcomes. sigma: a fixed bandwidth, or None for the automatic fixed point
    (bisection: ``refine`` halvings; bandwidths below ``eps`` count as fixed points).
    Returns smECE, or (smECE, sigma) with return_sigma=True.
    """
    f, y = _forecasts(probs, labels)
    if sigma is None:
        if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
            raise InputError(f"refine: expected a non-negative integer, got {refine!r}")
        s = _fixed_point(f, y, float(eps), int(refine))
    else:
        s = _check_sigma(sigma)
    value = _smece_sigma(f, y, s)
    return (value, s) if return_sigma else value


class SmoothReliability(NamedTuple):
    x: np.ndarray  # (n_grid,) evenly spaced on [0, 1]
    y: np.ndarray  # (n_grid,) smoothed outcome frequency E[y | f = x]
    density: np.ndarray  # (n_grid,) kernel density of the forecasts (integrates to about 1)
    sigma: float  # the bandwidth used
    smece: float  # smooth ECE at that bandwidth
    lower: np.ndarray | None  # (n_grid,) bootstrap band, or None
    upper: np.ndarray | None


@renamed_keywords(n_bootstrap="n_resamples", level="confidence_level")
def smooth_reliability(probs, labels, sigma: float | None = None, *, n_grid: int = 200,
                       n_resamples: int = 0, confidence_level: float = 0.95, seed: int = 0) -> SmoothReliability:
    """Smoothed reliability curve (Blasiok & Nakkiran 2023) with an optional bootstrap band.

    y(x) = sum_i K(x, f_i) y_i / (sum_i K(x, f_i) + 1e-4) with the kernel of
    :func:`smooth_ece` at the automatic bandwidth (or ``sigma``); density(x) =
    (1/n) sum_i K(x, f_i). Both equal relplot's kernel smoother and KDE at that
    bandwidth. n_resamples > 0: rows are resampled with replacement (seeded by ``seed``)
    and the curve recomputed at the same bandwidth; lower/upper are the pointwise
    (1 - confidence_level) / 2 and (1 + confidence_level) / 2 quantiles. The curve itself is the full-sample
    estimate (relplot plots the bootstrap mean instead).
    """
    f, y = _forecasts(probs, labels)
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 2:
        raise InputError(f"n_grid: expected an integer >= 2, got {n_grid!r}")
    n_resamples = check_n_resamples(n_resamples, allow_zero=True)
    level = check_confidence_level(confidence_level)
    smece, s = smooth_ece(f, y, sigma, return_sigma=True)
    x = np.linspace(0.0, 1.0, int(n_grid))
    curve, _ = _smooth_ratio(f, y, s, x)
    density = _smooth_on_grid(f, np.full(f.size, 1.0 / f.size), s, x)
    lower = upper = None
    if n_resamples:
        rng = np.random.default_rng(seed)
        draws = np.empty((n_resamples, x.size))
        for b in range(n_resamples):
            # a resample as counts per row: the same sums as indexing f[idx], y[idx]
            cnt = np.bincount(rng.integers(0, f.size, f.size), minlength=f.size).astype(np.float64)
            dens = _smooth_on_grid(f, cnt, s, x) + _DENS_EPS
            draws[b] = _smooth_on_grid(f, cnt * y, s, x) / dens
        lower, upper = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return SmoothReliability(x, curve, density, s, smece, lower, upper)


BAND_CELLS = 4096  # the cell-level band: equal-width cells of [0, 1]


class _CellSmoother:
    """The (cell, outcome) sufficient statistics of (n,) forecasts and outcomes, and the
    kernel of :func:`_smooth_on_grid` applied to blocks of resample weights at once.

    Each forecast is binned into one of ``n_cells`` equal-width cells of [0, 1]; each
    non-empty (cell, outcome) pair keeps its row count ``cnt``, the mean forecast of its rows
    ``centre`` and its outcome. ``smooth(w)``: (r, pairs) weights -> (r, len(x)) values of
    sum_pairs w K_sigma(x, centre) (FFT convolution along rows, equal to the per-row
    :func:`_smooth_on_grid` to rounding)."""

    def __init__(self, f, y, sigma: float, x, n_cells: int):
        cell = np.minimum((f * n_cells).astype(np.intp), n_cells - 1) * 2 + (y > 0.5)
        cnt = np.bincount(cell, minlength=2 * n_cells).astype(np.float64)
        tot = np.bincount(cell, weights=f, minlength=2 * n_cells)
        keep = cnt > 0
        self.cnt, self.centre = cnt[keep], tot[keep] / cnt[keep]
        self.outcome = (np.flatnonzero(keep) % 2).astype(np.float64)
        m = self.m = _n_nodes(sigma)
        pos = self.centre * (m - 1)
        self.lo = np.clip(pos.astype(np.intp), 0, m - 2)
        self.frac = pos - self.lo
        g = np.linspace(0.0, 1.0, m)
        ker = np.exp(-((g - 0.5) ** 2) / (2.0 * sigma**2)) / (np.sqrt(2.0 * np.pi) * sigma)
        self.size = 1 << (4 * m - 4).bit_length()
        self.kf = np.fft.rfft(ker, self.size)
        xg = np.asarray(x, dtype=np.float64)
        self.j = np.clip(np.searchsorted(g, xg, side="right") - 1, 0, m - 2)
        self.lam = (xg - g[self.j]) / (g[self.j + 1] - g[self.j])
        self.block = max(1, 2_000_000 // (3 * m))

    def smooth(self, w):
        m, r = self.m, w.shape[0]
        off = (np.arange(r) * m)[:, None]
        nodes = np.bincount((self.lo + off).ravel(), weights=((1.0 - self.frac) * w).ravel(), minlength=r * m)
        nodes += np.bincount((self.lo + 1 + off).ravel(), weights=(self.frac * w).ravel(), minlength=r * m)
        nodes = nodes.reshape(r, m)
        ext = np.concatenate([nodes[:, ::-1][:, :-1], nodes, nodes[:, ::-1][:, 1:]], axis=1)
        conv = np.fft.irfft(np.fft.rfft(ext, self.size, axis=1) * self.kf, self.size, axis=1)[:, m - 1 : ext.shape[1]]
        sm = conv[:, m // 2 : m // 2 + m]
        return (1.0 - self.lam) * sm[:, self.j] + self.lam * sm[:, self.j + 1]

    def poisson_blocks(self, n_resamples: int, seed: int):
        """Yield (start, (r, pairs) Poisson(cnt) weights) for ``n_resamples`` resamples."""
        rng = np.random.default_rng(seed)
        for b0 in range(0, int(n_resamples), self.block):
            r = min(self.block, int(n_resamples) - b0)
            yield b0, rng.poisson(self.cnt, (r, self.cnt.size)).astype(np.float64)


@renamed_keywords(level="confidence_level")
def smooth_reliability_band(probs, labels, sigma: float, x, *, n_resamples: int = 1000,
                            confidence_level: float = 0.95, seed: int = 0, n_cells: int = BAND_CELLS):
    """Pointwise bootstrap band of the smoothed reliability curve at a fixed bandwidth,
    Poisson bootstrap over rows resampled as (cell, outcome) counts: O(n) once, then
    O(n_cells + grid) per resample whatever n.

    The forecasts are binned into ``n_cells`` equal-width cells of [0, 1]; each (cell,
    outcome) keeps its row count and the mean forecast of its rows. Under the Poisson
    bootstrap the weighted count of a (cell, outcome) is Poisson(its count), exactly the
    row-level weights summed; the curve of a resample is then smoothed with every row of
    the pair at the pair's mean forecast, so the band differs from the row-level one by
    moving each row at most one cell (1 / n_cells) along the kernel, an error of order
    1 / (n_cells sigma) relative (measured in the tests against the row-level band). The
    kernel of :func:`smooth_reliability` is applied to blocks of resamples at once, the
    convolution by FFT (equal to the per-resample one to rounding).
    x: (g,) grid. Returns (lower (g,), upper (g,)); draws: ``default_rng(seed).poisson``.
    """
    n_resamples = check_n_resamples(n_resamples)
    level = check_confidence_level(confidence_level)
    f, y = _forecasts(probs, labels)
    cs = _CellSmoother(f, y, _check_sigma(sigma), x, n_cells)
    draws = np.empty((n_resamples, np.size(x)))
    for b0, w in cs.poisson_blocks(n_resamples, seed):
        draws[b0:b0 + w.shape[0]] = cs.smooth(w * cs.outcome) / (cs.smooth(w) + _DENS_EPS)
    return tuple(np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0))


def smooth_ece_resamples(probs, labels, sigma: float, *, n_resamples: int = 1000, seed: int = 0,
                         n_cells: int = BAND_CELLS) -> np.ndarray:
    """(n_resamples,) smooth ECE at the fixed bandwidth ``sigma`` on Poisson bootstrap
    resamples of the rows, resampled as (cell, outcome) counts like
    :func:`smooth_reliability_band` (O(n_cells + grid) per resample whatever n; each row
    moved to its pair's mean forecast, at most 1 / n_cells). smECE of weights w:
    sum_t |sum_i w_i (f_i - y_i) K(t, f_i)| / sum_t (sum_i w_i K(t, f_i) + eps) on the grid
    of :func:`smooth_ece`."""
    n_resamples = check_n_resamples(n_resamples)
    f, y = _forecasts(probs, labels)
    s = _check_sigma(sigma)
    t = np.linspace(0.0, 1.0, max(round(10.0 / s), 200))
    cs = _CellSmoother(f, y, s, t, n_cells)
    resid = cs.centre - cs.outcome
    draws = np.empty(n_resamples)
    for b0, w in cs.poisson_blocks(n_resamples, seed):
        num, den = cs.smooth(w * resid), cs.smooth(w) + _DENS_EPS
        draws[b0:b0 + w.shape[0]] = np.abs(num).sum(axis=1) / den.sum(axis=1)
    return draws
