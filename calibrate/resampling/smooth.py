"""Bootstrap interval of the top-label smooth ECE at a fixed bandwidth.

Shapes: ``probs`` (n, k) float, ``labels`` (n,) int.
"""

from __future__ import annotations

import numpy as np

from calibrate._core.interval import SmoothECEInterval
from calibrate._core.validation import check_confidence_level, check_n_resamples
from calibrate.metrics import smooth


def smooth_ece_interval(probs, labels, *, n_resamples: int = 200, confidence_level: float = 0.95, seed: int = 0,
                        sigma: float | None = None) -> SmoothECEInterval:
    """Top-label smooth ECE with a percentile bootstrap interval at a FIXED bandwidth.

    The bandwidth is ``sigma`` or the automatic one of the full sample; the resamples are
    :func:`calibrate.metrics.smooth.smooth_ece_resamples` (Poisson bootstrap over rows, resampled
    as (cell, outcome) counts: O(cells) per resample whatever n, each row moved at most
    1/4096 in confidence). The estimate is the exact :func:`calibrate.metrics.smooth.smooth_ece`.
    probs: (n, k) and labels (n,) int, or (n,) top-label confidences and (n,) 0/1
    correctness. Returns a :class:`SmoothECEInterval` (an Interval with
    the bandwidth ``sigma``; percentile, Poisson scheme).
    """
    n_resamples = check_n_resamples(n_resamples)
    confidence_level = check_confidence_level(confidence_level)
    f, o = smooth._forecasts(probs, labels)
    est, s = smooth.smooth_ece(f, o, sigma, return_sigma=True)
    draws = smooth.smooth_ece_resamples(f, o, s, n_resamples=n_resamples, seed=seed)
    a = (1.0 - confidence_level) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a])
    return SmoothECEInterval(float(lo), float(hi), est, confidence_level, n_resamples, "percentile", "poisson",
                             sigma=s)

