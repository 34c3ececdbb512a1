"""Bootstrap intervals of the out-of-distribution detection metrics (AUROC, AUPR-in,
AUPR-out, FPR at 95% TPR), O(n) per resample.

Shapes: ``scores_in`` (n_in,) float, ``scores_out`` (n_out,) float; higher = more in-distribution.
"""

from __future__ import annotations

import numpy as np

from calibrate._core.validation import InputError


class DetectionResampler:
    """:func:`calibrate.metrics.ood.detection_metrics` on bootstrap resamples, O(n) each.

    The pooled scores are sorted and grouped by distinct value once; ``values(rows_in,
    rows_out)`` gives the metrics of ``scores_in[rows_in]`` against ``scores_out[rows_out]``
    (equal to detection_metrics on those arrays) from per-group counts.
    scores_in: (n_in,), scores_out: (n_out,); higher = more in-distribution.
    """

    def __init__(self, scores_in, scores_out, tpr: float = 0.95):
        from calibrate.metrics.ood import _check_1d_scores

        s_in = _check_1d_scores(scores_in, "scores_in")
        s_out = _check_1d_scores(scores_out, "scores_out")
        if not 0.0 < float(tpr) <= 1.0:
            raise InputError(f"tpr: expected a number in (0, 1], got {tpr!r}")
        self.tpr = float(tpr)
        s = np.concatenate([s_in, s_out])
        order = np.argsort(-s, kind="stable")
        ss = s[order]
        gid = np.empty(s.size, dtype=np.intp)
        gid[order] = np.cumsum(np.concatenate([[True], ss[1:] != ss[:-1]])) - 1
        self.m = int(gid.max()) + 1
        self.gid_in, self.gid_out = gid[: s_in.size], gid[s_in.size:]
        self.n_in, self.n_out = s_in.size, s_out.size

    @staticmethod
    def _ap(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        tp = np.cumsum(pos, axis=-1)
        seen = tp + np.cumsum(neg, axis=-1)  # >= 1 wherever pos > 0
        return np.sum(pos * tp / np.maximum(seen, 1.0), axis=-1) / tp[..., -1]

    def _numbers(self, pos: np.ndarray, neg: np.ndarray) -> dict:
        """Metrics of per-group counts pos, neg: (m,) -> floats, or (r, m) -> (r,) arrays."""
        tp, fp = np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)
        tpr_pts, fpr_pts = tp / self.n_in, fp / self.n_out
        prev = np.concatenate([np.zeros(tpr_pts.shape[:-1] + (1,)), tpr_pts[..., :-1]], axis=-1)
        auroc = np.sum(neg / self.n_out * (tpr_pts + prev) / 2.0, axis=-1)
        j = np.argmax(tpr_pts >= self.tpr - 1e-12, axis=-1)
        fpr = np.take_along_axis(fpr_pts, np.asarray(j)[..., None], axis=-1)[..., 0]
        out = {"auroc": auroc, "aupr_in": self._ap(pos, neg), "aupr_out": self._ap(neg[..., ::-1], pos[..., ::-1]),
               "fpr_at_95tpr": fpr}
        return {k: float(v) for k, v in out.items()} if pos.ndim == 1 else out

    def _counts(self, gid: np.ndarray, rows: np.ndarray) -> np.ndarray:
        r = np.atleast_2d(np.asarray(rows))
        flat = (gid[r] + (np.arange(r.shape[0]) * self.m)[:, None]).ravel()
        return np.bincount(flat, minlength=r.shape[0] * self.m).reshape(r.shape[0], self.m).astype(np.float64)

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
    n_out)`` from ``default_rng(seed)``). Returns {metric: {estimate, low, high, confidence}}."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
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
    a = (1.0 - float(confidence_level)) / 2.0
    out = {}
    for k in est:
        lo, hi = np.quantile(draws[k], [a, 1.0 - a])
        out[k] = {"estimate": est[k], "low": float(lo), "high": float(hi), "confidence": float(confidence_level)}
    return out
