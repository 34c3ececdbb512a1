"""Cumulative calibration error (Arrieta-Ibarra, Gujral, Tannen, Tygert & Xu 2022, JMLR 23(351):
"Metrics of calibration for probabilistic predictions"): no bins, no bandwidth.

With the n scores sorted, S_1 <= S_2 <= ... <= S_n, and R_k the outcome (0/1) paired
with S_k, the cumulative differences are

    C_0 = 0,   C_k = (1/n) sum_{j <= k} (R_j - S_j)            (k = 1 .. n)

ECCE-R (the range, "Kuiper") = max_{0<=k<=n} C_k - min_{0<=k<=n} C_k;
ECCE-MAD ("Kolmogorov-Smirnov") = max_{1<=k<=n} |C_k|.
Under perfect calibration (E[R_k] = S_k, independent outcomes) C_n has the standard
deviation sigma = sqrt(sum_k S_k (1 - S_k)) / n, and as n grows ECCE-R / sigma tends in
distribution to the range of the standard Brownian motion on [0, 1], ECCE-MAD / sigma to
the maximum of its absolute value. The p-values are the tails of these two laws
(:func:`kuiper_sf`, :func:`ks_sf`); they are asymptotic, as in the paper.

The cumulative plot is C_k against k / n: the slope of a secant between two points is the
average miscalibration (outcome minus score) of the scores between them.

Weights (``sample_weight``, w_j > 0), as MCGrad's ECCE weighs rows:
C_k = sum_{j <= k} w_j (R_j - S_j) / sum_j w_j, sigma = sqrt(sum_j w_j^2 S_j (1 - S_j)) /
sum_j w_j, and the plot's abscissa is the cumulative weight sum_{j <= k} w_j / sum_j w_j.

Ties. The paper orders tied scores at random ("with any ties ordered randomly"); so does
``ties="random"`` (the default), with a generator seeded by ``seed`` so the result is
reproducible. ``ties="stable"`` keeps tied rows in their input order. ECCE-R can depend on
the order within a block of ties; C at the end of each block does not.

Inputs: ``probs`` (n, k) rows summing to 1 or (n,) P(class 1), ``labels`` (n,) in
[0, k). Top-label by default for (n, k) (confidence max_j p_ij against correctness),
P(class 1) against [label = 1] for (n,) scores, or any class with ``class_index``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

from calibrate._core.validation import (
    InputError,
    check_choice,
    check_labels,
    check_probs_labels,
    check_sample_weight,
    to_numpy,
)

TIES = ("random", "stable")
STATISTICS = ("range", "mad")
_EPS = np.finfo(np.float64).eps
_TAIL_FROM = 2.0  # x >= this: the tail series (no cancellation in 1 - CDF)


# ----------------------------------------------------------------------------- the two laws
def kuiper_sf(x):
    """P(R > x) for R the range (max - min) of the standard Brownian motion on [0, 1].

    x: float or array, x >= 0 (P = 1 at 0). For x < 2 it is 1 - F(x) with Feller's series
    F(x) = sum_{k>=0} (8/x^2 + 2/((k+1/2)^2 pi^2)) exp(-2 (k+1/2)^2 pi^2 / x^2); for x >= 2
    the tail series P(R > x) = 8 sum_{k>=1} (-1)^(k-1) k Q(k x) (Q the standard normal
    tail), accurate to relative rounding however small the probability (1 - F(x) would
    stop at about 1e-16).
    """
    return _sf(x, _kuiper_cdf_small, _kuiper_tail)


def ks_sf(x):
    """P(M > x) for M = max_{t in [0, 1]} |B(t)|, B the standard Brownian motion.

    For x < 2: 1 - (2/pi) sum_{k>=0} (-1)^k / (k+1/2) exp(-(k+1/2)^2 pi^2 / (2 x^2)); for
    x >= 2 the tail series 4 sum_{k>=0} (-1)^k Q((2k+1) x).
    """
    return _sf(x, _ks_cdf_small, _ks_tail)


def _sf(x, cdf_small, tail):
    arr = np.asarray(x, dtype=np.float64)
    flat = np.atleast_1d(arr).ravel()
    if np.isnan(flat).any() or (flat < 0).any():
        raise InputError("x: expected values >= 0 (a statistic divided by its sigma)")
    out = np.ones_like(flat)
    small = (flat > 0) & (flat < _TAIL_FROM)
    big = flat >= _TAIL_FROM
    if small.any():
        out[small] = 1.0 - cdf_small(flat[small])
    if big.any():
        out[big] = tail(flat[big])
    out = np.clip(out, 0.0, 1.0)
    return float(out[0]) if arr.ndim == 0 else out.reshape(arr.shape)


def _kuiper_cdf_small(x):
    # x in (0, 2): exp(-2 (k+1/2)^2 pi^2 / 4) < 1e-17 from k = 3 on; 8 terms leave nothing
    k = np.arange(8)[:, None] + 0.5
    x2 = x[None, :] ** 2
    return np.sum((8.0 / x2 + 2.0 / (k * k * math.pi**2)) * np.exp(-2.0 * k * k * math.pi**2 / x2), axis=0)


def _ks_cdf_small(x):
    k = np.arange(8)[:, None]
    kp = k + 0.5
    terms = (-1.0) ** k / kp * np.exp(-kp * kp * math.pi**2 / (2.0 * x[None, :] ** 2))
    return (2.0 / math.pi) * np.sum(terms, axis=0)


def _kuiper_tail(x):
    # x >= 2: Q(k x) < 1e-300 once k x > 37, so 20 terms suffice
    k = np.arange(1, 21)[:, None]
    return 8.0 * np.sum((-1.0) ** (k - 1) * k * ndtr(-k * x[None, :]), axis=0)


def _ks_tail(x):
    k = np.arange(10)[:, None]
    return 4.0 * np.sum((-1.0) ** k * ndtr(-(2 * k + 1) * x[None, :]), axis=0)


# ----------------------------------------------------------------------------- inputs
def check_scores_outcomes(scores, outcomes, sample_weight=None):
    """(scores (n,) float64 in [0, 1], outcomes (n,) float64 0/1, weights (n,) or None)."""
    s = to_numpy(scores, "scores")
    if s.ndim != 1 or s.size == 0:
        raise InputError(f"scores: expected a non-empty 1-d array of probabilities, got shape {s.shape}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        bad = int(np.argmax(~np.isfinite(s) | (s < 0) | (s > 1)))
        raise InputError(f"scores: expected probabilities in [0, 1], got {s[bad]} at row {bad}")
    r = check_labels(outcomes, s.shape[0], 2, "outcomes").astype(np.float64)
    w = None if sample_weight is None else check_sample_weight(sample_weight, s.shape[0])
    return s, r, w


def scores_outcomes(probs, labels, class_index: int | None = None):
    """(scores (n,), outcomes (n,) 0/1) from probs (n, k) or (n,) and labels (n,).

    class_index None: top-label for k > 2 columns given as (n, k) (the confidence
    max_j p_ij against [arg-max = label], the first arg-max on ties), P(class 1) for (n,)
    scores; an int j: p_ij against [label = j].
    """
    one_d = np.ndim(to_numpy(probs, "probs")) == 1
    p, y = check_probs_labels(probs, labels)
    if class_index is None:
        if one_d:
            return p[:, 1].astype(np.float64), (y == 1).astype(np.float64)
        pred = p.argmax(axis=1)
        return p[np.arange(p.shape[0]), pred].astype(np.float64), (pred == y).astype(np.float64)
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not (
            0 <= class_index < p.shape[1]):
        raise InputError(f"class_index: expected an integer in [0, {p.shape[1]}), got {class_index!r}")
    return p[:, class_index].astype(np.float64), (y == class_index).astype(np.float64)


def sort_order(scores: np.ndarray, ties: str = "random", seed: int = 0) -> np.ndarray:
    """(n,) int: the row order by increasing score; ties random (seeded) or stable."""
    check_choice(ties, "ties", TIES)
    if ties == "stable":
        return np.argsort(scores, kind="stable")
    key = np.random.default_rng(seed).random(scores.shape[0])
    return np.lexsort((key, scores))


# ----------------------------------------------------------------------------- results
class CumulativeCurve(NamedTuple):
    """The cumulative plot: y[k] = C_k against x[k] = cumulative weight share of the first k rows.

    x, y: (n + 1,) float64, x[0] = y[0] = 0, x[n] = 1; scores: (n,) the sorted scores
    (row k of the sorted data ends at x[k + 1]); sigma: the standard deviation of C_n
    under perfect calibration.
    """

    x: np.ndarray
    y: np.ndarray
    scores: np.ndarray
    sigma: float


class CumulativeCalibration(NamedTuple):
    """ECCE-R and ECCE-MAD with their sigma, ratios and asymptotic p-values.

    ratio = ECCE / sigma (inf when sigma = 0 < ECCE, 0 when both are 0);
    pvalue_r from the Kuiper law (:func:`kuiper_sf`), pvalue_mad from the
    Kolmogorov-Smirnov law (:func:`ks_sf`); n: rows.
    """

    ecce_r: float
    ecce_mad: float
    sigma: float
    ratio_r: float
    ratio_mad: float
    pvalue_r: float
    pvalue_mad: float
    n: int


def _ratio(ecce: float, sigma: float) -> float:
    if sigma > 0:
        return ecce / sigma
    return math.inf if ecce > 0 else 0.0


def _pvalue(ratio: float, sf) -> float:
    return 0.0 if math.isinf(ratio) else float(sf(ratio))


def curve_sorted(s: np.ndarray, r: np.ndarray, w: np.ndarray | None):
    """(x (n+1,), C (n+1,), sigma) for rows already in score order (float64 sums)."""
    n = s.shape[0]
    x = np.empty(n + 1)
    c = np.empty(n + 1)
    x[0] = c[0] = 0.0
    if w is None:
        np.cumsum(r - s, out=c[1:])
        c[1:] /= n
        x[1:] = np.arange(1, n + 1) / n
        sigma = math.sqrt(float(np.sum(s * (1.0 - s)))) / n
    else:
        total = float(w.sum())
        np.cumsum(w * (r - s), out=c[1:])
        c[1:] /= total
        np.cumsum(w, out=x[1:])
        x[1:] /= total
        x[-1] = 1.0
        sigma = math.sqrt(float(np.sum(w * w * s * (1.0 - s)))) / total
    return x, c, sigma


def summarize_curve(c: np.ndarray, sigma: float, n: int) -> CumulativeCalibration:
    """The statistics of a cumulative curve C (n+1,) with C[0] = 0."""
    ecce_r = float(c.max() - c.min())
    ecce_mad = float(np.abs(c).max())
    ratio_r, ratio_mad = _ratio(ecce_r, sigma), _ratio(ecce_mad, sigma)
    return CumulativeCalibration(ecce_r, ecce_mad, float(sigma), ratio_r, ratio_mad,
                                 _pvalue(ratio_r, kuiper_sf), _pvalue(ratio_mad, ks_sf), int(n))


# ----------------------------------------------------------------------------- public API
def cumulative_curve_from_scores(scores, outcomes, *, sample_weight=None, ties: str = "random",
                                 seed: int = 0) -> CumulativeCurve:
    """The cumulative plot of scores (n,) in [0, 1] against outcomes (n,) 0/1."""
    s, r, w = check_scores_outcomes(scores, outcomes, sample_weight)
    order = sort_order(s, ties, seed)
    x, c, sigma = curve_sorted(s[order], r[order], None if w is None else w[order])
    return CumulativeCurve(x, c, s[order], sigma)


def cumulative_curve(probs, labels, *, class_index: int | None = None, sample_weight=None,
                     ties: str = "random", seed: int = 0) -> CumulativeCurve:
    """The cumulative plot of probs (n, k) or (n,) against labels (n,) (see the module docstring)."""
    s, r = scores_outcomes(probs, labels, class_index)
    return cumulative_curve_from_scores(s, r, sample_weight=sample_weight, ties=ties, seed=seed)


def cumulative_calibration_from_scores(scores, outcomes, *, sample_weight=None, ties: str = "random",
                                       seed: int = 0) -> CumulativeCalibration:
    """ECCE-R, ECCE-MAD, sigma, ratios and p-values of scores (n,) against outcomes (n,) 0/1."""
    curve = cumulative_curve_from_scores(scores, outcomes, sample_weight=sample_weight, ties=ties, seed=seed)
    return summarize_curve(curve.y, curve.sigma, curve.scores.shape[0])


def cumulative_calibration(probs, labels, *, class_index: int | None = None, sample_weight=None,
                           ties: str = "random", seed: int = 0) -> CumulativeCalibration:
    """ECCE-R, ECCE-MAD, sigma, ratios and p-values of probs (n, k) or (n,) against labels (n,)."""
    curve = cumulative_curve(probs, labels, class_index=class_index, sample_weight=sample_weight,
                             ties=ties, seed=seed)
    return summarize_curve(curve.y, curve.sigma, curve.scores.shape[0])


def ecce(probs, labels, *, statistic: str = "range", class_index: int | None = None, sample_weight=None,
         ties: str = "random", seed: int = 0) -> float:
    """The empirical cumulative calibration error: ECCE-R ("range", default) or ECCE-MAD ("mad")."""
    check_choice(statistic, "statistic", STATISTICS)
    res = cumulative_calibration(probs, labels, class_index=class_index, sample_weight=sample_weight,
                                 ties=ties, seed=seed)
    return res.ecce_r if statistic == "range" else res.ecce_mad
