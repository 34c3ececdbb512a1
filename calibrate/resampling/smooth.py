"""Bootstrap interval of the top-label smooth ECE at a fixed bandwidth.

Shapes: ``probs`` (n, k) float, ``labels`` (n,) int.
"""

from __future__ import annotations

import numpy as np

from calibrate._core.validation import InputError, check_probs_labels
from calibrate.metrics import calibration as metrics
from calibrate.metrics import smooth


def smooth_ece_interval(probs, labels, *, n_resamples: int = 200, confidence_level: float = 0.95, seed: int = 0,
                        sigma: float | None = None) -> dict:
    """Top-label smooth ECE with a percentile bootstrap interval at a FIXED bandwidth.

    The bandwidth is ``sigma`` or the automatic one of the full sample; the resamples are
    :func:`calibrate.metrics.smooth.smooth_ece_resamples` (Poisson bootstrap over rows, resampled
    as (cell, outcome) counts: O(cells) per resample whatever n, each row moved at most
    1/4096 in confidence). The estimate is the exact :func:`calibrate.metrics.smooth.smooth_ece`.
    probs: (n, k); labels: (n,) int. Returns dict(estimate, low, high, confidence, sigma).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence_level) < 1.0:
        raise InputError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
    p, y = check_probs_labels(probs, labels)
    conf, ok = metrics._top_label(p, y)
    f, o = conf.astype(np.float64), ok.astype(np.float64)
    est, s = smooth.smooth_ece(f, o, sigma, return_sigma=True)
    draws = smooth.smooth_ece_resamples(f, o, s, n_resamples=int(n_resamples), seed=seed)
    a = (1.0 - float(confidence_level)) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a])
    return {"estimate": est, "low": float(lo), "high": float(hi), "confidence": float(confidence_level), "sigma": s}
