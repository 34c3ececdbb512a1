"""Metric tables with bootstrap intervals: every metric of one prediction, paired
differences against a reference, and several predictions on ONE set of resample weights.

Shapes: ``log_probs`` (n, k) float log-probabilities (any logits: a log-softmax is
applied), ``labels`` (n,) int. Every interval comes from
:func:`calibrate.resampling.bootstrap.bootstrap_many` over per-row sufficient statistics.
"""

from __future__ import annotations

import numpy as np

from calibrate._core.validation import renamed_keywords
from calibrate.metrics import calibration as metrics
from calibrate.resampling.bootstrap import bootstrap_many

METRIC_KEYS = list(metrics.METRIC_NAMES)
PAIRED_KEYS = ("ece", "ece_l2_debiased", "classwise_ece", "nll", "brier")


def _point_estimates(log_probs, labels, n_bins, keys):
    """The plug-in value of each metric (the definitions of calibrate.metrics)."""
    p = np.exp(log_probs)
    vals = metrics.all_metrics(p, labels, n_bins, logits=log_probs)
    return {k: vals[k] for k in keys}


def _with_estimate(ci) -> dict:
    """An interval as a dict; one that misses its estimate (a degenerate BCa correction, when
    nearly every resample lies on one side) is widened to it and marked "widened"."""
    d = ci.to_dict()
    d["method"] = ci.method
    if not d["low"] <= d["estimate"] <= d["high"]:
        d["low"], d["high"] = min(d["low"], d["estimate"]), max(d["high"], d["estimate"])
        d["widened"] = True
    return d


@renamed_keywords(confidence="confidence_level")
def evaluate_with_ci(log_probs: np.ndarray, labels: np.ndarray, n_bins: int = 15, n_resamples: int = 1000,
                     confidence_level: float = 0.95, seed: int = 0, method: str = "bca", scheme: str = "auto") -> dict:
    """{metric: {"estimate", "low", "high", "confidence"}} for every metric of METRIC_KEYS.

    log_probs: (n, k) float64 log-probabilities (any logits: a log-softmax is applied).
    All intervals come from one set of resample weights over sufficient statistics
    (calibrate.resampling.bootstrap.bootstrap_many); method "bca" (default), "percentile" or "basic".
    """
    lp = metrics.log_softmax(log_probs)
    est = {"p": _point_estimates(lp, labels, n_bins, METRIC_KEYS)}
    table, _, _ = bootstrap_many({"p": lp}, labels, METRIC_KEYS, n_resamples, confidence_level, seed, n_bins=n_bins,
                                 method=method, scheme=scheme, estimates=est)
    return {k: _with_estimate(v) for k, v in table["p"].items()}


@renamed_keywords(confidence="confidence_level")
def paired_differences(ref_log_probs, log_probs, labels, n_bins: int = 15, n_resamples: int = 1000,
                       confidence_level: float = 0.95, seed: int = 0, keys=PAIRED_KEYS, method: str = "bca",
                       scheme: str = "auto") -> dict:
    """{metric: {"estimate", "low", "high", "p_value"}} of metric(b) - metric(ref) on shared resamples."""
    la, lb = metrics.log_softmax(ref_log_probs), metrics.log_softmax(log_probs)
    est = {"ref": _point_estimates(la, labels, n_bins, keys), "b": _point_estimates(lb, labels, n_bins, keys)}
    _, paired, _ = bootstrap_many({"ref": la, "b": lb}, labels, list(keys), n_resamples, confidence_level, seed,
                                  n_bins=n_bins, reference="ref", method=method, scheme=scheme, estimates=est)
    return {k: _with_estimate(v) for k, v in paired["b"].items()}


@renamed_keywords(confidence="confidence_level")
def report_numbers(preds: dict, labels, n_bins: int = 15, n_resamples: int = 1000, confidence_level: float = 0.95,
                   seed: int = 0, method: str = "bca", scheme: str = "auto", reference: str = "uncalibrated",
                   estimates: dict | None = None, keys=None):
    """The report's metric table and paired differences, all from ONE set of resample weights.

    preds: {name: (n, k) log-probabilities, or f(slice) -> those rows' log-probabilities}.
    estimates: {name: {metric: value}} already computed (else computed here from arrays);
    keys: the metrics resampled (default METRIC_KEYS). Returns (table, diffs, info).
    """
    keys = list(METRIC_KEYS if keys is None else keys)
    est = estimates if estimates is not None else {
        name: _point_estimates(lp, labels, n_bins, keys) for name, lp in preds.items()}
    table, paired, info = bootstrap_many(preds, labels, keys, n_resamples, confidence_level, seed, n_bins=n_bins,
                                         reference=reference if len(preds) > 1 else None,
                                         paired_names=[k for k in PAIRED_KEYS if k in keys], method=method,
                                         scheme=scheme, estimates=est)
    table = {n: {k: _with_estimate(v) for k, v in r.items()} for n, r in table.items()}
    diffs = {n: {k: _with_estimate(v) for k, v in r.items()} for n, r in paired.items()}
    return table, diffs, info
