"""Decompositions of proper scores and of the ECE, a calibration test, KS and Kuiper errors.

Shapes: ``probs`` (n, k) float with rows summing to 1 (or (n,) P(class 1)),
``logits`` (n, k) float, ``labels`` (n,) int. Binning follows :mod:`calibrate._core.binning`
(the one bin rule of :mod:`calibrate.metrics`). Sums are float64.

Brier (Murphy 1973; Stephenson et al. 2008). For one class, forecasts f_i = p_ij,
outcomes o_i = [y_i = j], bins b holding n_b rows with mean forecast f_b and mean
outcome o_b, and overall frequency o:
    REL = (1/n) sum_b n_b (f_b - o_b)^2          reliability (calibration), lower = better
    RES = (1/n) sum_b n_b (o_b - o)^2            resolution, higher = better
    UNC = o (1 - o)                              uncertainty of the outcome
    WBV = (1/n) sum_b sum_{i in b} (f_i - f_b)^2                 within-bin variance
    WBC = (1/n) sum_b sum_{i in b} (f_i - f_b)(o_i - o_b)        within-bin covariance
Exactly (an algebraic identity, for any bins):  BS = REL - RES + UNC + WBV - 2 WBC,
and the Brier score of the binned forecast (each f_i replaced by its bin's f_b) is
exactly REL - RES + UNC. The multiclass values are the sums over classes (one-vs-rest,
each class binned on its own column), matching :func:`calibrate.metrics.brier` (the sum
over classes, in [0, 2]); UNC is then 1 - sum_j o_j^2.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core import dispatch as _dispatch
from calibrate._core import ranking
from calibrate._core import stats as _stats
from calibrate._core.stats import top_label as _top_label
from calibrate._core.validation import (
    check_choice,
    check_logits_labels,
    check_n_bins,
    check_n_resamples,
    check_probs_labels,
)
from calibrate.metrics.calibration import (
    BINNINGS,
    binned_state,
    classwise_statistic,
    nll_from_logits,
)


def _check_binning(n_bins, binning):
    check_choice(binning, "binning", BINNINGS)
    return check_n_bins(n_bins)


# ------------------------------------------------------------------------ Brier
def brier_decomposition(probs, labels, n_bins: int = 15, *, binning: str = "width") -> dict:
    """Murphy's decomposition of the (multiclass) Brier score, with the two extra terms.

    Returns a dict of floats: brier, reliability, resolution, uncertainty,
    within_bin_variance, within_bin_covariance, with
    brier = reliability - resolution + uncertainty + within_bin_variance
    - 2 within_bin_covariance (exact; see the module docstring). The sums are those of
    :class:`calibrate._core.stats.ClasswiseBrierBins` (streamed by
    ``CalibrationAccumulator(decomposition=True)``); probs may be a dask array ("width").
    """
    n_bins = _check_binning(n_bins, binning)
    p, y = _dispatch.check(probs, labels)
    stat = classwise_statistic(_stats.ClasswiseBrierBins, p, y, n_bins, binning, "the equal-mass Brier decomposition")
    state, brier_state = _dispatch.reduce([stat, _stats.Brier()], p, y)
    return brier_decomposition_from_states(stat, state, brier_state)


def brier_decomposition_from_states(stat, state, brier_state) -> dict:
    """The dict of :func:`brier_decomposition` from the float64 states of a
    :class:`calibrate._core.stats.ClasswiseBrierBins` and a :class:`calibrate._core.stats.Brier`
    over the same rows ("brier" is the Brier statistic's, as :func:`calibrate.metrics.brier`)."""
    d = stat.finish(state)
    out = {key: float(v) for key, v in d.items()}
    out["brier"] = float(_stats.Brier().finish(brier_state))
    return out


# ---------------------------------------------------------------------- log loss
RECALIBRATIONS: dict = {}  # name -> calibrator class; filled by calibrate.calibrators


def register_recalibration(name: str, factory) -> None:
    """Make ``name`` a ``method`` of :func:`log_loss_decomposition`: factory() gives an
    unfitted calibrator (:mod:`calibrate.calibrators` registers "temperature" and "isotonic")."""
    RECALIBRATIONS[name] = factory


def log_loss_decomposition(logits, labels, method="temperature") -> dict:
    """Log loss = calibration + refinement, with the calibrated forecast fitted in-sample.

    refinement = NLL of the recalibrated forecast r (``method`` fitted on these logits and
    labels: "temperature" (:class:`calibrate.TemperatureScaling`), "isotonic"
    (:class:`calibrate.IsotonicCalibration`) or any unfitted calibrator instance: an
    object with fit(logits, labels) and predict_log_proba(logits));
    calibration = NLL - refinement, the loss that recalibration removes (Brocker 2009's
    reliability term for the log score, estimated with that recalibration family).
    With temperature scaling the calibration term is >= 0 (T = 1 is a candidate);
    isotonic maps are fitted one-vs-rest and renormalised, so it can be slightly negative.
    Returns dict(nll, calibration, refinement, method). logits: (n, k); labels: (n,) int.
    """
    z, y = check_logits_labels(logits, labels)
    if hasattr(method, "fit") and hasattr(method, "predict_log_proba"):
        cal, name = method, type(method).__name__
    else:
        check_choice(method, "method", tuple(RECALIBRATIONS) or ("temperature", "isotonic"))
        cal, name = RECALIBRATIONS[method](), method
    rows = np.arange(z.shape[0])
    nll = nll_from_logits(z, y)
    refinement = float(-np.mean(cal.fit(z, y).predict_log_proba(z)[rows, y]))
    return {"nll": nll, "calibration": nll - refinement, "refinement": refinement, "method": name}


# ------------------------------------------------------------------ ECE: signed
def ece_over_under(probs, labels, n_bins: int = 15, *, binning: str = "width") -> dict:
    """Split the top-label ECE into over- and under-confidence (signed bin gaps).

    overconfidence = sum_b w_b max(conf_b - acc_b, 0), underconfidence =
    sum_b w_b max(acc_b - conf_b, 0), w_b = n_b / n; they sum to
    :func:`calibrate.metrics.ece` with the same bins. Returns dict(ece, overconfidence,
    underconfidence). From the sums of :class:`calibrate._core.stats.Bins`
    (:meth:`~calibrate._core.stats.Bins.over_under`); probs may be a dask array.
    """
    n_bins = _check_binning(n_bins, binning)
    p, y = _dispatch.check(probs, labels)
    if binning == "width":
        stat = _stats.Bins(_binning.equal_width_edges(n_bins))
        state = _dispatch.reduce([stat], p, y)[0]
    else:
        stat, state = binned_state(*_dispatch.top_label_values(p, y), n_bins, binning)
    return ece_over_under_from_state(stat, state)


def ece_over_under_from_state(stat, state) -> dict:
    """The dict of :func:`ece_over_under` from a top-label :class:`calibrate._core.stats.Bins`
    statistic and its float64 state (see :func:`calibrate._core.stats.over_under_confidence`)."""
    over, under = (float(v) for v in stat.over_under(state))
    return {"ece": over + under, "overconfidence": over, "underconfidence": under}


class ConsistencyTest(NamedTuple):
    ece: float  # the observed top-label ECE (L1)
    p_value: float  # (1 + #{null >= ece}) / (1 + n_resamples)
    null: np.ndarray  # (n_resamples,) ECEs of the resampled labels


def ece_consistency_test(probs, labels, n_bins: int = 15, *, binning: str = "width",
                         n_resamples: int = 1000, seed: int = 0) -> ConsistencyTest:
    """Is the ECE larger than perfect calibration would give? (consistency resampling)

    Brocker & Smith 2007: keep the confidences c_i, redraw the correctness of the top
    label as Bernoulli(c_i) (a perfectly calibrated world) ``n_resamples`` times (draw r
    is ``u < c`` for the r-th row of uniform numbers from numpy's default_rng(seed), in
    order), recompute the top-label ECE with the same bins, and report the one-sided
    p-value (1 + #{null >= observed}) / (1 + n_resamples).
    """
    n_resamples = check_n_resamples(n_resamples)
    n_bins = _check_binning(n_bins, binning)
    conf, ok = _top_label(*check_probs_labels(probs, labels))
    n = conf.size
    c64 = conf.astype(np.float64)
    stat = _stats.Bins(_binning.make_edges(conf, n_bins, binning))
    _, s_conf, s_corr = stat.sums(stat.update_values(stat.zeros(), conf, ok))
    observed = float(np.abs(s_corr - s_conf).sum() / n)
    idx = _binning.bin_index(conf, stat.edges)
    rng = np.random.default_rng(seed)
    null = np.empty(int(n_resamples))
    chunk = max(1, (1 << 22) // n)
    for r0 in range(0, null.size, chunk):
        m = min(chunk, null.size - r0)
        hits = rng.random((m, n)) < c64
        flat = (idx + (np.arange(m) * n_bins)[:, None]).ravel()
        s_corr = np.bincount(flat, weights=hits.ravel(), minlength=m * n_bins).reshape(m, n_bins)
        null[r0 : r0 + m] = np.abs(s_corr - s_conf).sum(axis=1) / n
    p = (1.0 + np.count_nonzero(null >= observed)) / (1.0 + null.size)
    return ConsistencyTest(observed, float(p), null)


# ------------------------------------------------------------------ KS and Kuiper
def _cumulative_gap(probs, labels):
    """h_t = (1/n) sum_{c_i <= t} (correct_i - c_i) at every distinct confidence t, with h = 0
    before the first: the empirical gap between the two cumulative curves."""
    p, y = check_probs_labels(probs, labels)
    conf, ok = _top_label(p, y)
    c = conf.astype(np.float64)
    g = ranking.TieGroups(c, descending=False)
    return np.concatenate([[0.0], g.cumulative(ok - c) / c.size])


def ks_calibration_error(probs, labels) -> float:
    """Top-label Kolmogorov-Smirnov calibration error (Gupta et al. 2021).

    KS = max_t |(1/n) sum_{c_i <= t} (correct_i - c_i)| over the confidences t; rows with
    equal confidence enter together (no dependence on their order).
    """
    return float(np.max(np.abs(_cumulative_gap(probs, labels))))


def kuiper_calibration_error(probs, labels) -> float:
    """Top-label Kuiper calibration error: max_t h_t - min_t h_t (h as in the KS error, and
    h = 0 before the first confidence), i.e. the largest gap above plus the largest below."""
    h = _cumulative_gap(probs, labels)
    return float(h.max() - h.min())
