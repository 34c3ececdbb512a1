"""Selective classification: risk-coverage curves and their areas.

A classifier that may abstain accepts the rows whose confidence score is at least a
threshold t. For each threshold, coverage is the fraction of rows accepted and
(selective) risk the error rate among them. Any score works (higher = more confident):
:func:`max_probability`, :func:`probability_margin` and :func:`negative_entropy` compute the usual
ones from probabilities, and :mod:`calibrate.metrics.ood` has more from logits.

Ties: rows with equal scores are accepted or rejected together, so the curve has one
point per distinct score and nothing depends on the order of tied rows.

Shapes: ``confidence`` (n,) float (finite), ``correct`` (n,) 0/1 or bool.
References: Geifman & El-Yaniv 2017 (risk-coverage, AURC); Geifman et al. 2019
(E-AURC); Traub et al. 2024, "Overcoming common flaws in the evaluation of selective
classification systems" (AUGRC).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from calibrate._core import ranking
from calibrate._core.blocks import row_blocks
from calibrate._core.validation import (
    InputError,
    check_1d_scores,
    check_scores,
    renamed_function,
    to_numpy,
)


def _check_conf_correct(confidence, correct):
    c = check_1d_scores(confidence, "confidence")
    ok = to_numpy(correct, "correct")
    if ok.shape != c.shape:
        raise InputError(f"correct: expected shape {c.shape} (one per confidence), got {ok.shape}")
    if ok.dtype.kind == "b":
        ok = ok.astype(np.float64)
    else:
        if ok.dtype.kind not in "fiu" or not np.isin(ok, (0, 1)).all():
            raise InputError("correct: expected 0/1 or boolean values")
        ok = ok.astype(np.float64)
    return c, ok


class _Groups(NamedTuple):
    accepted: np.ndarray  # (m,) rows accepted at each distinct threshold, decreasing score
    errors: np.ndarray  # (m,) errors among them
    n: int


def _groups(c: np.ndarray, ok: np.ndarray) -> _Groups:
    g = ranking.TieGroups(c)
    return _Groups(g.ends.astype(np.float64), g.cumulative(1.0 - ok), g.n)


def _counts(g: _Groups):
    """(errors, rows) per tie group, most confident first."""
    return np.diff(g.errors, prepend=0.0), np.diff(g.accepted, prepend=0.0)


class RiskCoverage(NamedTuple):
    coverage: np.ndarray  # (m,) increasing, ending at 1
    risk: np.ndarray  # (m,) error rate among the accepted rows


def risk_coverage(confidence, correct) -> RiskCoverage:
    """Risk-coverage curve: one point per distinct confidence value t, t decreasing.

    coverage(t) = #{i: c_i >= t} / n, risk(t) = #{i: c_i >= t, wrong} / #{i: c_i >= t}.
    Returns (coverage, risk), each (m,) float64 for the m distinct scores; the
    thresholds are ``np.unique(confidence)[::-1]``.
    """
    c, ok = _check_conf_correct(confidence, correct)
    g = _groups(c, ok)
    return RiskCoverage(g.accepted / g.n, g.errors / g.accepted)


def aurc(confidence, correct) -> float:
    """Area under the risk-coverage curve (Geifman & El-Yaniv 2017), a step integral.

    AURC = sum_j (cov_j - cov_{j-1}) risk_j over the distinct thresholds: without ties,
    (1/n) sum_{i=1}^n risk after accepting the i most confident rows. Lower is better.
    """
    c, ok = _check_conf_correct(confidence, correct)
    return _aurc(_groups(c, ok))


def _aurc(g: _Groups) -> float:
    return ranking.aurc(*_counts(g))


_aurc_optimal = ranking.aurc_optimal


def eaurc(confidence, correct) -> float:
    """Excess AURC (Geifman et al. 2019): AURC minus the AURC of the optimal ranking.

    The optimum is computed exactly for the finite sample, (1/n) sum_{i=1}^n
    max(0, i - n_correct) / i (about r + (1 - r) log(1 - r) for error rate r, large n).
    """
    c, ok = _check_conf_correct(confidence, correct)
    return _aurc(_groups(c, ok)) - _aurc_optimal(int(ok.sum()), c.size)


def augrc(confidence, correct) -> float:
    """Area under the generalized risk-coverage curve (Traub et al. 2024).

    Generalized risk = #{accepted and wrong} / n (the joint probability, not the
    conditional one). The curve is linear inside a group of tied scores and starts at
    (0, 0); the area is the trapezoid rule, which makes
    AUGRC = (1 - AUROC_f) acc (1 - acc) + (1 - acc)^2 / 2, where AUROC_f is the AUROC
    of the score for telling correct from wrong rows (ties counted 1/2). Lower is better.
    """
    c, ok = _check_conf_correct(confidence, correct)
    return ranking.augrc(*_counts(_groups(c, ok)))


def risk_at_coverage(confidence, correct, coverage: float) -> float:
    """Selective risk at the smallest achievable coverage >= ``coverage`` (in (0, 1]).

    Tied rows are accepted together, so the coverage reached may exceed the one asked.
    """
    cov_target = _check_fraction(coverage, "coverage", low_open=True)
    c, ok = _check_conf_correct(confidence, correct)
    return float(ranking.risk_at_coverage(*_counts(_groups(c, ok)), [cov_target])[0])


def coverage_at_risk(confidence, correct, risk: float) -> float:
    """Largest coverage whose selective risk is <= ``risk`` (in [0, 1]); 0.0 if none."""
    r = _check_fraction(risk, "risk", low_open=False)
    c, ok = _check_conf_correct(confidence, correct)
    g = _groups(c, ok)
    good = g.errors / g.accepted <= r
    return float(g.accepted[good].max() / g.n) if good.any() else 0.0


def _check_fraction(x, name, low_open):
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number in [0, 1], got {x!r}") from None
    if not (0.0 < v <= 1.0 if low_open else 0.0 <= v <= 1.0):
        rng = "(0, 1]" if low_open else "[0, 1]"
        raise InputError(f"{name}: expected a number in {rng}, got {x!r}")
    return v


# --------------------------------------------------------------- confidence scores
def _row_blocks(p: np.ndarray, fn) -> np.ndarray:
    out = np.empty(p.shape[0], dtype=np.float64)
    for s in row_blocks(p.shape[0], p.shape[1] if p.ndim > 1 else 1):
        out[s] = fn(p[s].astype(np.float64))
    return out


def max_probability(probs) -> np.ndarray:
    """(n,) float64 max_j p_ij from probs (n, k) (or binary (n,) P(class 1))."""
    p = check_scores(probs, "probs", kind="probs")
    return _row_blocks(p, lambda b: b.max(axis=1))


def probability_margin(probs) -> np.ndarray:
    """(n,) float64 p_(1) - p_(2), the gap between the two largest probabilities (1 if k = 1)."""
    p = check_scores(probs, "probs", kind="probs")
    if p.shape[1] == 1:
        return np.ones(p.shape[0])

    def top2(b):
        t = np.partition(b, b.shape[1] - 2, axis=1)
        return t[:, -1] - t[:, -2]

    return _row_blocks(p, top2)


def negative_entropy(probs) -> np.ndarray:
    """(n,) float64 sum_j p_ij log p_ij (nats; 0 log 0 = 0): higher = more confident."""
    p = check_scores(probs, "probs", kind="probs")

    def negent(b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(np.where(b > 0, b * np.log(b), 0.0), axis=1)

    return _row_blocks(p, negent)


margin = renamed_function(probability_margin, "calibrate.metrics.selective.margin")
