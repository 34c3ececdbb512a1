"""Ranking by a score: tie groups, ROC areas, average precision, risk-coverage areas.

Rows are ranked by their score (decreasing unless asked otherwise, stable for ties) and
rows with equal scores form one *tie group*: a threshold accepts or rejects a whole
group, so nothing depends on the order of tied rows. Every ranking metric of the package
is a function of per-group counts in that order, computed here once:

  auroc              Mann-Whitney P(s_pos > s_neg) + P(s_pos = s_neg) / 2, the trapezoid
                     rule on the ROC points at the group boundaries
  average_precision  sum over groups of (recall step) x precision, no interpolation
  fpr_at_tpr         the smallest false-positive rate whose true-positive rate >= tpr
  aurc / augrc       areas under the (generalized) risk-coverage curve
  risk_at_coverage   the risk at the smallest group boundary whose coverage >= the one asked
  aurc_optimal       the AURC of the best ranking, in closed form

The count functions take arrays (..., m) of per-group counts, most confident group first,
so one call evaluates a single sample (m,) or a block of resamples (r, m).
"""

from __future__ import annotations

import numpy as np


class TieGroups:
    """Rows of a (n,) score ranked by decreasing (or increasing) score, ties grouped.

    order: (n,) the stable ranking (``np.argsort(-score, kind="stable")``); last: (m,) the
    position in ``order`` of the last row of each of the m groups; n, m: their numbers.
    """

    def __init__(self, score, *, descending: bool = True):
        s = np.asarray(score, dtype=np.float64)
        self.order = np.argsort(-s if descending else s, kind="stable")
        ss = s[self.order]
        self.last = np.flatnonzero(np.append(ss[1:] != ss[:-1], True))
        self.n, self.m = int(s.size), int(self.last.size)
        self._row_group = None

    @property
    def ends(self) -> np.ndarray:
        """(m,) intp rows accepted up to and including each group."""
        return self.last + 1

    @property
    def row_group(self) -> np.ndarray:
        """(n,) intp the group of each row (0 = first in the ranking)."""
        if self._row_group is None:
            g = np.zeros(self.n, dtype=np.intp)
            g[self.last[:-1] + 1] = 1
            self._row_group = np.empty(self.n, dtype=np.intp)
            self._row_group[self.order] = np.cumsum(g)
        return self._row_group

    def cumulative(self, values) -> np.ndarray:
        """(m,) sum of ``values`` (n,) over the rows up to and including each group."""
        return np.cumsum(np.asarray(values)[self.order])[self.last]

    def counts(self, weights=None) -> np.ndarray:
        """(m,) float64 rows (or sum of ``weights`` (n,)) in each group."""
        return np.bincount(self.row_group, weights=weights, minlength=self.m).astype(np.float64, copy=False)

    def resampled_counts(self, rows, weights=None) -> np.ndarray:
        """(r, m) float64 per-group counts of resamples ``rows`` ((r, n') int row indices;
        each group counts its rows, or the sum of ``weights`` (n,) over them)."""
        return resampled_group_counts(self.row_group, self.m, rows, weights)

    def coarsened(self, max_groups: int) -> np.ndarray:
        """(G,) intp ends (rows accepted, increasing, last = n) of at most ``max_groups``
        contiguous runs of about n / max_groups rows each, cut only at group ends (ties
        are never split)."""
        ends = self.ends
        g = min(int(max_groups), self.n)
        targets = np.ceil(np.arange(1, g + 1) * (self.n / g))
        return np.unique(ends[np.minimum(np.searchsorted(ends, targets, side="left"), ends.size - 1)])


def resampled_group_counts(group: np.ndarray, m: int, rows, weights=None) -> np.ndarray:
    """(r, m) float64 counts per group of resamples ``rows`` ((r, n') int indices into
    ``group`` (n,), the group of each row; or the sum of ``weights`` (n,) over them)."""
    r = np.atleast_2d(np.asarray(rows))
    flat = (group[r] + (np.arange(r.shape[0]) * m)[:, None]).ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[r].ravel()
    out = np.bincount(flat, weights=w, minlength=r.shape[0] * m)
    return out.reshape(r.shape[0], m).astype(np.float64, copy=False)


def _prev(c: np.ndarray) -> np.ndarray:
    """The cumulative counts before each group: c shifted right by one along the last axis."""
    return np.concatenate([np.zeros(c.shape[:-1] + (1,)), c[..., :-1]], axis=-1)


# ------------------------------------------------------------------ detection (ROC, PR)
def _as_counts(pos, neg):
    return np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)


def _auroc(neg, tp, fp):
    tpr = tp / tp[..., -1:]
    return np.sum(neg / fp[..., -1:] * (tpr + _prev(tpr)) / 2.0, axis=-1)


def _average_precision(pos, tp, fp):
    return np.sum(pos * tp / np.maximum(tp + fp, 1.0), axis=-1) / tp[..., -1]  # tp + fp >= 1 where pos > 0


def _fpr_at_tpr(tp, fp, tpr):
    j = np.argmax(tp / tp[..., -1:] >= float(tpr) - 1e-12, axis=-1)
    return np.take_along_axis(fp / fp[..., -1:], np.asarray(j)[..., None], axis=-1)[..., 0]


def _scalar(out):
    return float(out) if np.ndim(out) == 0 else out


def auroc(pos, neg):
    """AUROC of per-group counts of positives and negatives (..., m), higher group first:
    the trapezoid rule on the ROC points, equal to Mann-Whitney with ties counted 1/2.
    Returns a float for (m,) counts, an array (...,) otherwise."""
    pos, neg = _as_counts(pos, neg)
    return _scalar(_auroc(neg, np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)))


def average_precision(pos, neg):
    """Average precision sum_g (R_g - R_{g-1}) P_g of per-group counts (..., m), higher
    group first (scikit-learn's ``average_precision_score``, no interpolation)."""
    pos, neg = _as_counts(pos, neg)
    return _scalar(_average_precision(pos, np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)))


def fpr_at_tpr(pos, neg, tpr: float = 0.95):
    """The false-positive rate at the first group boundary whose true-positive rate is
    >= ``tpr`` (the smallest such rate: both are monotone), of counts (..., m)."""
    pos, neg = _as_counts(pos, neg)
    return _scalar(_fpr_at_tpr(np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1), tpr))


def detection_numbers(pos, neg, tpr: float = 0.95) -> dict:
    """{auroc, aupr_in, aupr_out, fpr_at_95tpr} of per-group counts (..., m) of positive
    (in-distribution) and negative rows, higher score first; aupr_out ranks the other way.
    Floats for (m,) counts, (...,) arrays otherwise."""
    pos, neg = _as_counts(pos, neg)
    tp, fp = np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)
    rpos, rneg = neg[..., ::-1], pos[..., ::-1]
    out = {"auroc": _auroc(neg, tp, fp), "aupr_in": _average_precision(pos, tp, fp),
           "aupr_out": _average_precision(rpos, np.cumsum(rpos, axis=-1), np.cumsum(rneg, axis=-1)),
           "fpr_at_95tpr": _fpr_at_tpr(tp, fp, tpr)}
    return {k: float(v) for k, v in out.items()} if pos.ndim == 1 else out


def auroc_of_scores(score, positive) -> float:
    """AUROC of (n,) scores for telling ``positive`` (n,) bool rows (higher score) from
    the others; ties counted 1/2. NaN when either class is absent."""
    pos = np.asarray(positive, dtype=bool)
    if pos.all() or not pos.any():
        return float("nan")
    g = TieGroups(score)
    return auroc(g.counts(pos.astype(np.float64)), g.counts((~pos).astype(np.float64)))


# ------------------------------------------------------------------ risk-coverage
def _risk(err, cnt):
    """(cumulative accepted, cumulative errors, risk) of per-group counts (..., m)."""
    acc = np.cumsum(cnt, axis=-1)
    errs = np.cumsum(err, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        risk = np.where(acc > 0, errs / np.maximum(acc, 1.0), 0.0)
    return acc, errs, risk


def aurc(err, cnt):
    """Area under the risk-coverage curve of per-group counts of errors and rows (..., m),
    most confident group first: sum_g (rows_g / n) risk_g, risk_g the error rate among the
    groups up to g. A float for (m,), an array otherwise."""
    err, cnt = np.asarray(err, dtype=np.float64), np.asarray(cnt, dtype=np.float64)
    acc, _, risk = _risk(err, cnt)
    out = np.sum(cnt / np.maximum(acc[..., -1:], 1.0) * risk, axis=-1)
    return float(out) if out.ndim == 0 else out


def augrc(err, cnt):
    """Area under the generalized risk-coverage curve (errors accepted / n against
    coverage, linear inside a group: the trapezoid rule) of counts (..., m)."""
    err, cnt = np.asarray(err, dtype=np.float64), np.asarray(cnt, dtype=np.float64)
    n = np.maximum(np.sum(cnt, axis=-1, keepdims=True), 1.0)
    gr = np.cumsum(err, axis=-1) / n
    out = np.sum(cnt / n * (gr + _prev(gr)) / 2.0, axis=-1)
    return float(out) if out.ndim == 0 else out


def risk_at_coverage(err, cnt, coverages):
    """Risk at the smallest group boundary whose coverage is >= each of ``coverages``
    (g,) in (0, 1], of counts (..., m): an array (..., g)."""
    err, cnt = np.asarray(err, dtype=np.float64), np.asarray(cnt, dtype=np.float64)
    acc, _, risk = _risk(err, cnt)
    cov = acc / np.maximum(acc[..., -1:], 1.0)
    t = np.asarray(coverages, dtype=np.float64)
    t = t - 1e-12 * t
    if cov.ndim == 1:
        return risk[np.minimum(np.searchsorted(cov, t, side="left"), cov.size - 1)]
    flat_cov, flat_risk = cov.reshape(-1, cov.shape[-1]), risk.reshape(-1, risk.shape[-1])
    out = np.empty((flat_cov.shape[0], t.size))
    for i in range(flat_cov.shape[0]):
        out[i] = flat_risk[i, np.minimum(np.searchsorted(flat_cov[i], t, side="left"), flat_cov.shape[1] - 1)]
    return out.reshape(cov.shape[:-1] + (t.size,))


def aurc_optimal(n_correct, n):
    """AURC of the best ranking (every correct row strictly above every wrong one, no ties)
    of n rows, n_correct of them correct: (1/n) sum_{i=1}^n max(0, i - c) / i, in closed
    form ((n - c) - c (H_n - H_c)) / n with H_n - H_c = psi(n + 1) - psi(c + 1). Scalars
    give a float, arrays (of resampled counts) an array; 0 where n = 0."""
    from scipy.special import digamma

    c = np.asarray(n_correct, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(m > 0, ((m - c) - c * (digamma(m + 1.0) - digamma(c + 1.0))) / np.maximum(m, 1.0), 0.0)
    return float(v) if v.ndim == 0 else v
