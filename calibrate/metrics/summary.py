"""The summary numbers of one prediction beyond the ECE family.

:func:`summary_metrics` is what ``calibrate evaluate`` prints: every metric of
:func:`calibrate.metrics.all_metrics` plus

  aurc, augrc              risk-coverage areas of the max probability (:mod:`calibrate.metrics.selective`)
  smooth_ece               smooth ECE, automatic bandwidth (:mod:`calibrate.metrics.smooth`)
  brier_calibration        REL of Murphy's Brier decomposition, binned one-vs-rest with the
                           ECE's bins (:func:`calibrate.metrics.decomposition.brier_decomposition`)
  brier_refinement         Brier - brier_calibration (= UNC - RES + WBV - 2 WBC), so the
                           two add up to the Brier score exactly
  overconfidence,          the signed split of the top-label ECE
  underconfidence          (:func:`calibrate.metrics.decomposition.ece_over_under`); they sum to ``ece``

One sort of the confidences serves both risk-coverage areas; the rest is O(n k). Their
bootstrap intervals are in :mod:`calibrate.resampling` (selective, smooth, detection).

Shapes: ``probs`` (n, k) float, ``labels`` (n,) int.
"""

from __future__ import annotations

import numpy as np

from calibrate._core import ranking
from calibrate._core import stats as _stats
from calibrate._core.validation import (
    check_probs_labels,
)
from calibrate.metrics import calibration as metrics
from calibrate.metrics import decomposition, smooth
from calibrate.metrics.selective import _aurc, _counts, _groups

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
    return ranking.augrc(*_counts(g))


def summary_metrics(probs, labels, n_bins: int = 15, *, logits=None) -> dict:
    """All of :func:`calibrate.metrics.all_metrics` and the keys of ``BEYOND_NAMES``.

    probs: (n, k) probabilities; labels: (n,) int; logits: optional (n, k) for an exact NLL.
    The risk-coverage areas use the max probability as the confidence score. Returns a
    dict of floats.
    """
    p, y = check_probs_labels(probs, labels)
    out = metrics.all_metrics(p, y, n_bins, logits=logits)
    conf, ok = _stats.top_label(p, y)
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


#: ``calibrate evaluate`` computes the class-wise quantities (class-wise ECE, the Brier
#: calibration/refinement split: O(n k) bin sums) up to this many classes, or when asked
CLASSWISE_MAX_K = 100
CLASSWISE_KEYS = ("classwise_ece", "brier_calibration", "brier_refinement")


def summary_in_blocks(logits, labels, n_bins: int = 15, *, transform=None, classwise: bool = True) -> dict:
    """:func:`summary_metrics` of softmax(logits) (or of ``transform``'s log-probabilities)
    computed in row blocks: memory is the (n,) top-label confidences plus one block, so a
    memory-mapped (n, k) file is never loaded whole (what ``calibrate evaluate`` calls).

    The Brier reliability term comes from the accumulator's class-wise bin sums (the same
    one-vs-rest equal-width bins as :func:`calibrate.metrics.decomposition.brier_decomposition`:
    :func:`calibrate._core.stats.brier_reliability`); the over/under-confidence split from its
    top-label bin sums (:meth:`CalibrationAccumulator.ece_over_under`); the risk-coverage areas and the smooth ECE from the
    (n,) confidences and correctness. classwise=False: none of CLASSWISE_KEYS (no
    class-wise bin sums, the O(n k) part).
    """
    from calibrate.backends.streaming import evaluate_in_blocks

    res, acc, conf, ok = evaluate_in_blocks(logits, labels, n_bins, transform=transform, return_state=True,
                                            classwise=classwise)
    if classwise:
        rel = float(_stats.brier_reliability(*acc.stats["classwise"].sums(acc.states["classwise"])))
        res.update({"brier_calibration": rel, "brier_refinement": res["brier"] - rel})
    ou = acc.ece_over_under()
    g = _groups(conf, ok.astype(np.float64))
    res.update({
        "aurc": _aurc(g),
        "augrc": _augrc(g),
        "smooth_ece": smooth.smooth_ece(conf, ok.astype(np.float64)),
        "overconfidence": ou["overconfidence"],
        "underconfidence": ou["underconfidence"],
    })
    return res


