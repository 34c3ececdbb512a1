"""The summary numbers of one prediction beyond the ECE family, and cheap intervals for them.

:func:`summary_metrics` is what ``calibrate evaluate`` prints: every metric of
:func:`calibrate.metrics.all_metrics` plus

  aurc, augrc              risk-coverage areas of the max probability (:mod:`calibrate.selective`)
  smooth_ece               smooth ECE, automatic bandwidth (:mod:`calibrate.smooth`)
  brier_calibration        REL of Murphy's Brier decomposition, binned one-vs-rest with the
                           ECE's bins (:func:`calibrate.decomposition.brier_decomposition`)
  brier_refinement         Brier - brier_calibration (= UNC - RES + WBV - 2 WBC), so the
                           two add up to the Brier score exactly
  overconfidence,          the signed split of the top-label ECE
  underconfidence          (:func:`calibrate.decomposition.ece_over_under`); they sum to ``ece``

One sort of the confidences serves both risk-coverage areas; the rest is O(n k).

:class:`SelectiveResampler` bootstraps the risk-coverage numbers (AURC, E-AURC, AUGRC,
risk at given coverages, the curve on a coverage grid) without re-sorting: the rows are
sorted and grouped by distinct confidence once, and a resample only changes how many
rows (and errors) each group holds, so each resample is two ``bincount`` calls, O(n).

Shapes: ``probs`` (n, k) float, ``labels`` (n,) int, ``confidence`` (n,) float,
``correct`` (n,) 0/1 or bool.
"""

from __future__ import annotations

import numpy as np

from . import decomposition, metrics, selective, smooth
from ._validation import InputError, check_probs_labels
from .selective import _aurc, _aurc_optimal, _check_conf_correct, _groups

#: the keys summary_metrics adds to metrics.all_metrics, with their labels for printing
BEYOND_NAMES = {
    "aurc": "AURC (max prob.)",
    "augrc": "AUGRC (max prob.)",
    "smooth_ece": "smooth ECE",
    "brier_calibration": "Brier calibration (REL)",
    "brier_refinement": "Brier refinement",
    "overconfidence": "ECE overconfidence",
    "underconfidence": "ECE underconfidence",
}
SUMMARY_NAMES = {**metrics.METRIC_NAMES, **BEYOND_NAMES}


def _augrc(g) -> float:
    """AUGRC from sorted groups: the trapezoid rule of selective.augrc."""
    cov = np.concatenate([[0.0], g.accepted / g.n])
    gr = np.concatenate([[0.0], g.errors / g.n])
    return float(np.sum(np.diff(cov) * (gr[1:] + gr[:-1]) / 2.0))


def summary_metrics(probs, labels, n_bins: int = 15, *, logits=None) -> dict:
    """All of :func:`calibrate.metrics.all_metrics` and the keys of ``BEYOND_NAMES``.

    probs: (n, k) probabilities; labels: (n,) int; logits: optional (n, k) for an exact NLL.
    The risk-coverage areas use the max probability as the confidence score. Returns a
    dict of floats.
    """
    p, y = check_probs_labels(probs, labels)
    out = metrics.all_metrics(p, y, n_bins, logits=logits)
    conf, ok = metrics._top_label(p, y)
    g = _groups(conf.astype(np.float64), ok.astype(np.float64))
    bd = decomposition.brier_decomposition(p, y, n_bins)
    ou = decomposition.ece_over_under(p, y, n_bins)
    out.update({
        "aurc": _aurc(g),
        "augrc": _augrc(g),
        "smooth_ece": smooth.smooth_ece(p, y),
        "brier_calibration": bd["reliability"],
        "brier_refinement": bd["brier"] - bd["reliability"],
        "overconfidence": ou["overconfidence"],
        "underconfidence": ou["underconfidence"],
    })
    return out


# ------------------------------------------------------------------ selective bootstrap
class SelectiveResampler:
    """Risk-coverage numbers of (confidence, correct) on bootstrap resamples, O(n) each.

    ``values(rows)`` gives the numbers of the resample ``confidence[rows], correct[rows]``
    (rows: (n,) int indices, drawn with replacement), equal to the functions of
    :mod:`calibrate.selective` on the resampled arrays: aurc, eaurc, augrc,
    risk@<c> for each coverage c, and ``curve``, the risk at each coverage of ``grid``
    (the :func:`calibrate.selective.risk_at_coverage` rule: the smallest achievable
    coverage >= the one asked).
    """

    def __init__(self, confidence, correct, coverages=(0.8, 0.9), grid=None):
        c, ok = _check_conf_correct(confidence, correct)
        self.coverages = tuple(selective._check_fraction(v, "coverage", low_open=True) for v in coverages)
        self.grid = np.linspace(0.05, 1.0, 96) if grid is None else np.asarray(grid, dtype=np.float64)
        if self.grid.ndim != 1 or self.grid.size == 0 or self.grid.min() <= 0 or self.grid.max() > 1:
            raise InputError("grid: expected a 1-d array of coverages in (0, 1]")
        order = np.argsort(-c, kind="stable")
        cs = c[order]
        starts = np.concatenate([[True], cs[1:] != cs[:-1]])
        gid_sorted = np.cumsum(starts) - 1
        self.gid = np.empty(c.size, dtype=np.intp)
        self.gid[order] = gid_sorted  # group of each row, 0 = most confident
        self.wrong = 1.0 - ok
        self.m = int(gid_sorted[-1]) + 1
        self.n = c.size

    def _numbers(self, cnt: np.ndarray, err: np.ndarray) -> dict:
        n = self.n
        acc = np.cumsum(cnt)
        errs = np.cumsum(err)
        with np.errstate(invalid="ignore", divide="ignore"):
            risk = np.where(acc > 0, errs / np.maximum(acc, 1.0), 0.0)
        cov = acc / n
        aurc = float(np.sum(cnt / n * risk))
        gr = np.concatenate([[0.0], errs / n])
        augrc = float(np.sum(cnt / n * (gr[1:] + gr[:-1]) / 2.0))
        out = {"aurc": aurc, "eaurc": aurc - _aurc_optimal(int(round(n - errs[-1])), n), "augrc": augrc}

        def at(targets):
            t = np.asarray(targets, dtype=np.float64)
            j = np.minimum(np.searchsorted(cov, t - 1e-12 * t, side="left"), cov.size - 1)
            return risk[j]

        for c, r in zip(self.coverages, at(self.coverages)):
            out[f"risk@{c:g}"] = float(r)
        out["curve"] = at(self.grid)
        return out

    def estimate(self) -> dict:
        """The numbers on the full sample."""
        return self._numbers(np.bincount(self.gid, minlength=self.m).astype(np.float64),
                             np.bincount(self.gid, weights=self.wrong, minlength=self.m))

    def values(self, rows) -> dict:
        """The numbers on the resample ``rows`` ((n,) int indices)."""
        r = np.asarray(rows)
        g = self.gid[r]
        return self._numbers(np.bincount(g, minlength=self.m).astype(np.float64),
                             np.bincount(g, weights=self.wrong[r], minlength=self.m))


def selective_intervals(confidence, correct, *, coverages=(0.8, 0.9), grid=None, n_resamples: int = 1000,
                        confidence_level: float = 0.95, seed: int = 0) -> dict:
    """Risk-coverage numbers with percentile bootstrap intervals.

    Returns {"aurc" | "eaurc" | "augrc" | "risk@<c>": {"estimate", "low", "high",
    "confidence"}, "curve": {"coverage" (g,), "estimate" (g,), "low" (g,), "high" (g,)}}.
    Resample b uses rows ``default_rng(seed).integers(0, n, n)`` (the b-th draw).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
    rs = SelectiveResampler(confidence, correct, coverages, grid)
    est = rs.estimate()
    rng = np.random.default_rng(seed)
    keys = [k for k in est if k != "curve"]
    draws = {k: np.empty(n_resamples) for k in keys}
    curves = np.empty((n_resamples, rs.grid.size))
    for b in range(n_resamples):
        v = rs.values(rng.integers(0, rs.n, rs.n))
        for k in keys:
            draws[k][b] = v[k]
        curves[b] = v["curve"]
    a = (1.0 - float(confidence_level)) / 2.0
    out = {}
    for k in keys:
        lo, hi = np.quantile(draws[k], [a, 1.0 - a])
        out[k] = {"estimate": est[k], "low": float(lo), "high": float(hi), "confidence": float(confidence_level)}
    lo, hi = np.quantile(curves, [a, 1.0 - a], axis=0)
    out["curve"] = {"coverage": rs.grid, "estimate": est["curve"], "low": lo, "high": hi}
    return out


def smooth_ece_interval(probs, labels, *, n_resamples: int = 200, confidence_level: float = 0.95, seed: int = 0,
                        sigma: float | None = None) -> dict:
    """Top-label smooth ECE with a percentile bootstrap interval at a FIXED bandwidth.

    The bandwidth is ``sigma`` or the automatic one of the full sample; each resample
    (rows ``default_rng(seed).integers(0, n, n)``) recomputes
    :func:`calibrate.smooth.smooth_ece` at that bandwidth (as the band of
    :func:`calibrate.smooth.smooth_reliability` does). probs: (n, k); labels: (n,) int.
    Returns dict(estimate, low, high, confidence, sigma).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
    p, y = check_probs_labels(probs, labels)
    conf, ok = metrics._top_label(p, y)
    f, o = conf.astype(np.float64), ok.astype(np.float64)
    est, s = smooth.smooth_ece(f, o, sigma, return_sigma=True)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = rng.integers(0, f.size, f.size)
        draws[b] = smooth.smooth_ece(f[idx], o[idx], s)
    a = (1.0 - float(confidence_level)) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a])
    return {"estimate": est, "low": float(lo), "high": float(hi), "confidence": float(confidence_level), "sigma": s}
