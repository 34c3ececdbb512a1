"""Bootstrap intervals of the out-of-distribution detection metrics (AUROC, AUPR-in,
AUPR-out, FPR at 95% TPR), O(n) per resample.

Shapes: ``scores_in`` (n_in,) float, ``scores_out`` (n_out,) float; higher = more in-distribution.
"""

from __future__ import annotations

import numpy as np

from calibrate._core import ranking
from calibrate._core.interval import Interval
from calibrate._core.validation import (
    InputError,
    check_1d_scores,
    check_confidence_level,
    check_n_resamples,
)


# ------------------------------------------------------------------ detection bootstrap
class DetectionResampler:
    """:func:`calibrate.metrics.ood.detection_metrics` on bootstrap resamples, O(n) each.

    The pooled scores are sorted and grouped by distinct value once; ``values(rows_in,
    rows_out)`` gives the metrics of ``scores_in[rows_in]`` against ``scores_out[rows_out]``
    (equal to detection_metrics on those arrays) from per-group counts.
    scores_in: (n_in,), scores_out: (n_out,); higher = more in-distribution.
    """

    def __init__(self, scores_in, scores_out, tpr: float = 0.95):
        s_in = check_1d_scores(scores_in, "scores_in")
        s_out = check_1d_scores(scores_out, "scores_out")
        if not 0.0 < float(tpr) <= 1.0:
            raise InputError(f"tpr: expected a number in (0, 1], got {tpr!r}")
        self.tpr = float(tpr)
        self.groups = ranking.TieGroups(np.concatenate([s_in, s_out]))
        self.m = self.groups.m
        gid = self.groups.row_group
        self.gid_in, self.gid_out = gid[: s_in.size], gid[s_in.size:]
        self.n_in, self.n_out = s_in.size, s_out.size

    def _numbers(self, pos: np.ndarray, neg: np.ndarray) -> dict:
        """Metrics of per-group counts pos, neg: (m,) -> floats, or (r, m) -> (r,) arrays."""
        return ranking.detection_numbers(pos, neg, self.tpr)

    def _counts(self, gid: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return ranking.resampled_group_counts(gid, self.m, rows)

    def estimate(self) -> dict:
        return self._numbers(np.bincount(self.gid_in, minlength=self.m).astype(np.float64),
                             np.bincount(self.gid_out, minlength=self.m).astype(np.float64))

    def values(self, rows_in, rows_out) -> dict:
        """Metrics of one resample (rows_in (n_in,), rows_out (n_out,) int) -> floats, or of
        several at once ((r, n_in), (r, n_out)) -> (r,) arrays."""
        one = np.asarray(rows_in).ndim == 1
        v = self._numbers(self._counts(self.gid_in, rows_in), self._counts(self.gid_out, rows_out))
        return {k: float(x[0]) for k, x in v.items()} if one else v


def detection_intervals(scores_in, scores_out, *, n_resamples: int = 1000, confidence_level: float = 0.95,
                        seed: int = 0) -> dict:
    """Detection metrics with percentile bootstrap intervals, in- and out-of-distribution rows
    resampled separately (resample b: ``integers(0, n_in, n_in)`` then ``integers(0, n_out,
    n_out)`` from ``default_rng(seed)``). Returns {metric: :class:`~calibrate.resampling.Interval`}
    (percentile, multinomial)."""
    n_resamples = check_n_resamples(n_resamples)
    confidence_level = check_confidence_level(confidence_level)
    rs = DetectionResampler(scores_in, scores_out)
    est = rs.estimate()
    rng = np.random.default_rng(seed)
    draws = {k: np.empty(n_resamples) for k in est}
    chunk = max(1, 2_000_000 // (rs.n_in + rs.n_out + rs.m))
    for b0 in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - b0)
        rows_in = np.empty((r, rs.n_in), dtype=np.intp)
        rows_out = np.empty((r, rs.n_out), dtype=np.intp)
        for i in range(r):  # the documented draw order, one resample after the other
            rows_in[i] = rng.integers(0, rs.n_in, rs.n_in)
            rows_out[i] = rng.integers(0, rs.n_out, rs.n_out)
        v = rs.values(rows_in, rows_out)
        for k in est:
            draws[k][b0:b0 + r] = v[k]
    a = (1.0 - confidence_level) / 2.0
    out = {}
    for k in est:
        lo, hi = np.quantile(draws[k], [a, 1.0 - a])
        out[k] = Interval(float(lo), float(hi), est[k], confidence_level, n_resamples, "percentile", "multinomial")
    return out

