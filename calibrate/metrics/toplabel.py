"""Top-label NLL and ECE of logits, and of a calibrator's output, in ONE pass over row blocks.

This is what ``calibrate fit`` prints ("NLL before -> after", "ECE before -> after"): it
needs, per row, only the log of the softmax denominator, the label's logit and the
arg-max, so a block costs one exponential per value and prediction, and nothing of size
(n, k) (no class-wise bins, no Brier terms, no log-probability matrix) is made. A
memory-mapped (n, k) file is read once, block by block, for every prediction at once.

Per row with zs = z - max_j z and a = 1/T (a = 1: uncalibrated):
lse = log sum_j exp(a zs_j); NLL term = lse - a zs_y; top-label confidence = exp(-lse)
(the arg-max has zs = 0); correct = [arg-max = y] (the same at every T > 0).
"""

from __future__ import annotations

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core import stats as _stats
from calibrate._core.blocks import BLOCK_BYTES, row_blocks, row_max
from calibrate._core.validation import check_gold_finite, check_labels, check_n_bins, check_scores


def _scale(cal):
    """1/T of a fitted TemperatureScaling (the fast path), else None (use predict_log_proba)."""
    t = getattr(cal, "temperature_", None)
    if type(cal).__name__ == "TemperatureScaling" and isinstance(t, float) and t > 0:
        return 1.0 / t
    return None


def nll_ece_in_blocks(logits, labels, n_bins: int = 15, calibrators=(None,)) -> list[dict]:
    """[{"nll", "ece"}] of softmax(logits) (``None``) and of each fitted calibrator of
    ``calibrators``, from one pass over (n, k) logits (float32/float64, memory-mapped or
    not). ECE: top-label, ``n_bins`` equal-width bins (the rule of :func:`calibrate.metrics.ece`);
    NLL: exact from the logits. float64 sums.
    """
    n_bins = check_n_bins(n_bins)
    z = check_scores(logits, "logits", kind="logits")
    n, k = z.shape
    y = check_labels(labels, n, k)
    check_gold_finite(z, y)
    bins = _stats.Bins(_binning.equal_width_edges(n_bins))
    cals = list(calibrators)
    nll = np.zeros(len(cals))
    states = [bins.zeros() for _ in cals]
    for s in row_blocks(n, k, 8, BLOCK_BYTES):
        zb = np.asarray(z[s], dtype=np.float64)
        m = zb.shape[0]
        ar, yb = np.arange(m), y[s]
        zs = zb - row_max(zb)[:, None]
        e = np.empty_like(zs)
        pred = zs.argmax(axis=1)
        ok = (pred == yb).astype(np.float64)
        for i, cal in enumerate(cals):
            a = 1.0 if cal is None else _scale(cal)
            if a is not None:
                np.exp(np.multiply(zs, a, out=e) if a != 1.0 else zs, out=e)
                lse = np.log(e.sum(axis=1))
                nll[i] += float(np.sum(lse - a * zs[ar, yb]))
                conf = np.exp(-lse)
                correct = ok
            else:
                lp = np.asarray(cal.predict_log_proba(zb, kind="logits"), dtype=np.float64)
                top = lp.argmax(axis=1)
                conf = np.exp(lp[ar, top])
                correct = (top == yb).astype(np.float64)
                nll[i] -= float(np.sum(lp[ar, yb]))
            states[i] = bins.update_values(states[i], conf, correct)
    return [{"nll": float(nll[i] / n), "ece": float(bins.finish(states[i]))} for i in range(len(cals))]
