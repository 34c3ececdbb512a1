"""Bootstrap confidence intervals for any metric, and for the difference of a metric
between two predictions of the same samples (paired).

A bootstrap resample is a vector of counts w (how often each sample was drawn, summing
to n). Every metric of :mod:`calibrate.metrics` is a function of sums that are linear
in w: per-bin counts and sums for the binned metrics, per-sample losses for NLL, Brier
and accuracy. So all resamples are computed at once as one sparse product
W (R, n) @ M (n, c) instead of a Python loop over resamples. Bin edges are those of the
full sample (for equal-mass bins, the interval is conditional on them). Metrics with no
such form (the debiased L1 estimator, a user's own function) fall back to a loop.

The interval is the percentile interval of the resampled values (Efron & Tibshirani 1993).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import _binning, metrics
from ._validation import (
    MAX_RESAMPLES,
    InputError,
    check_labels,
    check_n_resamples,
    check_probs_labels,
)

_CHUNK_ELEMENTS = 20_000_000  # resamples are drawn in chunks of at most this many counts


@dataclass(frozen=True)
class Interval:
    """A confidence interval; unpacks as ``low, high = interval``."""

    low: float
    high: float
    estimate: float  # the metric on the full sample (for a paired interval: b minus a)
    confidence: float
    n_resamples: int

    def __iter__(self):
        return iter((self.low, self.high))

    def __getitem__(self, i):
        return (self.low, self.high)[i]

    def __len__(self):
        return 2

    def to_dict(self):
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}


@dataclass(frozen=True)
class PairedInterval(Interval):
    """Interval of metric(b) - metric(a) over the same resamples.

    p_value: two-sided bootstrap p-value of "no difference": twice the smaller fraction of
    resamples on either side of 0 (at least 1 / n_resamples).
    """

    p_value: float = 1.0

    def to_dict(self):
        return {**super().to_dict(), "p_value": self.p_value}


_NAMED = {
    "accuracy": (metrics.accuracy, {}),
    "nll": (metrics.nll, {}),
    "brier": (metrics.brier, {}),
    "ece": (metrics.ece, {}),
    "ece_mass": (metrics.ece, {"binning": "mass"}),
    "ece_l2": (metrics.ece, {"norm": "l2"}),
    "ece_l2_debiased": (metrics.ece, {"norm": "l2", "debiased": True}),
    "mce": (metrics.ece, {"norm": "max"}),
    "classwise_ece": (metrics.ece, {"classwise": True}),
}


def _resolve(metric, kwargs):
    if isinstance(metric, str):
        if metric not in _NAMED:
            raise InputError(f"metric: expected a function or one of {', '.join(_NAMED)}, got {metric!r}")
        fn, extra = _NAMED[metric]
        return fn, {**extra, **kwargs}
    if metric is metrics.mce:
        return metrics.ece, {"norm": "max", **kwargs}
    if metric is metrics.classwise_ece:
        return metrics.ece, {"classwise": True, **kwargs}
    if not callable(metric):
        raise InputError(f"metric: expected a callable or a metric name, got {metric!r}")
    return metric, dict(kwargs)


class _Linear:
    """A metric as f(W @ M): M (n, c) sparse per-sample columns, f on the (r, c) sums."""

    def __init__(self, fn, p, y, kw, log_probs=None):
        n = p.shape[0]
        self.n = n
        per_sample = {
            metrics.accuracy: lambda: metrics._top_label(p, y)[1].astype(np.float64),
            metrics.nll: lambda: metrics._nll_terms(p, y, log_probs),
            metrics.brier: lambda: metrics._brier_terms(p, y),
        }
        if fn in per_sample:  # a mean of per-sample terms
            self.cols = sp.csr_matrix(per_sample[fn]()[:, None])
            self.finish = lambda s: s[:, 0] / n
        elif fn is metrics.ece:
            self._init_ece(p, y, kw)
        else:
            raise TypeError

    def _init_ece(self, p, y, kw):
        n_bins = kw.get("n_bins", 15)
        binning = kw.get("binning", "width")
        norm = kw.get("norm", "l1")
        debiased = kw.get("debiased", False)
        if debiased and norm == "l1":
            raise TypeError  # resampling inside: loop instead
        n, k = p.shape
        if kw.get("classwise", False):
            idx = metrics.classwise_bin_index(p, n_bins, binning)
            groups = k
            col = (idx + np.arange(k) * n_bins).ravel()
            rows = np.repeat(np.arange(n), k)
            conf = p.astype(np.float64).ravel()
            hit = (y[:, None] == np.arange(k)).astype(np.float64).ravel()
        else:
            c, ok = metrics._top_label(p, y)
            c = c.astype(np.float64)
            col = _binning.bin_index(c, _binning.make_edges(c, n_bins, binning))
            rows, conf, hit, groups = np.arange(n), c, ok.astype(np.float64), 1
        gb = groups * n_bins
        data = np.concatenate([np.ones_like(conf), conf, hit])
        r = np.concatenate([rows, rows, rows])
        cc = np.concatenate([col, col + gb, col + 2 * gb])
        self.cols = sp.csr_matrix((data, (r, cc)), shape=(n, 3 * gb))

        def finish(s):
            s = s.reshape(s.shape[0], 3, groups, n_bins)
            e = metrics._group_errors(s[:, 0], s[:, 1], s[:, 2], norm, debiased)
            if groups == 1:
                return e[:, 0]
            if norm == "l1":
                return e.mean(1)
            if norm == "l2":
                return np.sqrt(np.mean(e**2, 1))
            return e.max(1)

        self.finish = finish

    def values(self, w: np.ndarray) -> np.ndarray:
        return self.finish(np.asarray((self.cols.T @ w.T).T))


def _count_chunks(n, n_resamples, rng):
    """Yield (r, n) float64 count matrices, n_resamples rows in all."""
    per = max(1, _CHUNK_ELEMENTS // max(n, 1))
    done = 0
    while done < n_resamples:
        r = min(per, n_resamples - done)
        idx = rng.integers(0, n, size=(r, n))
        idx += (np.arange(r) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=r * n).reshape(r, n).astype(np.float64)
        done += r


def _evaluator(metric, p, y, kw, log_probs=None):
    fn, kw = _resolve(metric, kw)
    try:
        lin = _Linear(fn, p, y, kw, log_probs)
        return fn, kw, lin.values
    except TypeError:
        pass

    def loop(w):
        out = np.empty(w.shape[0])
        for i, wi in enumerate(w):
            take = np.repeat(np.arange(p.shape[0]), wi.astype(np.int64))
            out[i] = fn(p[take], y[take], **kw)
        return out

    return fn, kw, loop


def bootstrap_distribution(metric, probs, labels, n_resamples: int = 1000, seed: int = 0, *, log_probs=None,
                           **metric_kwargs) -> np.ndarray:
    """(n_resamples,) values of the metric on bootstrap resamples of the rows."""
    p, y = check_probs_labels(probs, labels)
    _, _, values = _evaluator(metric, p, y, metric_kwargs, log_probs)
    rng = np.random.default_rng(seed)
    return np.concatenate([values(w) for w in _count_chunks(p.shape[0], n_resamples, rng)])


def _check_level(confidence, n_resamples):
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a value in (0, 1), got {confidence}")
    if int(n_resamples) < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples}")
    if int(n_resamples) > MAX_RESAMPLES:
        check_n_resamples(int(n_resamples))  # the one message for the limit


def bootstrap_ci(metric, probs, labels, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                 *, log_probs=None, **metric_kwargs) -> Interval:
    """Percentile bootstrap interval of ``metric(probs, labels, **metric_kwargs)``.

    metric: a function of :mod:`calibrate.metrics` (vectorised), a name such as "ece" or
    "classwise_ece", or any callable f(probs, labels) -> float (looped).
    log_probs: optional (n, k) exact log-probabilities for the NLL (from logits).
    """
    _check_level(confidence, n_resamples)
    p, y = check_probs_labels(probs, labels)
    fn, kw, values = _evaluator(metric, p, y, metric_kwargs, log_probs)
    est = _estimate(fn, p, y, kw, log_probs)
    rng = np.random.default_rng(seed)
    vals = np.concatenate([values(w) for w in _count_chunks(p.shape[0], n_resamples, rng)])
    a = (1 - confidence) / 2
    lo, hi = np.quantile(vals, [a, 1 - a])
    return Interval(float(lo), float(hi), float(est), confidence, int(n_resamples))


def _estimate(fn, p, y, kw, log_probs):
    if fn is metrics.nll and log_probs is not None:
        return float(-np.mean(log_probs[np.arange(p.shape[0]), y]))
    return float(fn(p, y, **kw))


def paired_bootstrap_ci(metric, probs_a, probs_b, labels, n_resamples: int = 1000, confidence: float = 0.95,
                        seed: int = 0, *, log_probs_a=None, log_probs_b=None, **metric_kwargs) -> PairedInterval:
    """Interval of metric(b) - metric(a) when a and b predict the same samples.

    Both are evaluated on the same resamples, so the noise they share cancels: the
    question "is calibrator b better than a, beyond the noise of the test set?" is
    answered by whether the interval excludes 0 (see ``p_value``).
    """
    _check_level(confidence, n_resamples)
    pa, y = check_probs_labels(probs_a, labels, "probs_a")
    pb, _ = check_probs_labels(probs_b, y, "probs_b")
    if pa.shape != pb.shape:
        raise InputError(f"probs_b: expected the shape of probs_a {pa.shape}, got {pb.shape}")
    check_labels(y, pa.shape[0], pa.shape[1])
    fa, kwa, va = _evaluator(metric, pa, y, metric_kwargs, log_probs_a)
    fb, kwb, vb = _evaluator(metric, pb, y, metric_kwargs, log_probs_b)
    est = _estimate(fb, pb, y, kwb, log_probs_b) - _estimate(fa, pa, y, kwa, log_probs_a)
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([vb(w) - va(w) for w in _count_chunks(pa.shape[0], n_resamples, rng)])
    a = (1 - confidence) / 2
    lo, hi = np.quantile(diffs, [a, 1 - a])
    side = min(np.mean(diffs <= 0), np.mean(diffs >= 0))
    p_value = float(min(1.0, max(2 * side, 1.0 / n_resamples)))
    return PairedInterval(float(lo), float(hi), float(est), confidence, int(n_resamples), p_value)
