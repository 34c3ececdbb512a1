"""Per-group comparison of a global calibrator and a grouped one, with paired bootstrap intervals.

    table = grouped_comparison(global_cal, grouped_cal, test_logits, test_labels, test_groups)

For every group (and for all rows together) the NLL and the top-label ECE of both
calibrators' probabilities on that group's rows, and the paired difference grouped - global
(negative: the grouped calibrator is better there) with its bootstrap interval from
:func:`calibrate.resampling.tables.paired_differences` on the group's rows (both
calibrators on the same resamples). A group with fewer than ``min_count`` rows gets its
point estimates and no interval (``"difference": None``, ``"too_small": True``).
"""

from __future__ import annotations

import numpy as np

from calibrate._core.validation import InputError, as_logits
from calibrate.calibrators.base import encode_labels
from calibrate.calibrators.grouped import GroupedCalibrator, _check_groups
from calibrate.metrics import calibration as metrics
from calibrate.resampling.tables import paired_differences

KEYS = ("nll", "ece")


def _values(lp: np.ndarray, y: np.ndarray, n_bins: int) -> dict:
    p = np.exp(lp)
    return {"nll": metrics.nll(p, y), "ece": metrics.ece(p, y, n_bins)}


def _scalar(v):
    return v.item() if isinstance(v, np.generic) else v


def grouped_comparison(global_cal, grouped_cal: GroupedCalibrator, logits, labels, groups, *, kind: str | None = None,
                       n_bins: int = 15, n_resamples: int = 1000, confidence_level: float = 0.95, seed: int = 0,
                       min_count: int = 20, method: str = "bca") -> dict:
    """Per-group NLL and ECE of a global and a grouped calibrator, with paired intervals.

    global_cal: a fitted Calibrator (None: ``grouped_cal.global_``); grouped_cal: a fitted
    GroupedCalibrator; logits (n, k), labels (n,), groups (n,) (rows of groups the grouped
    calibrator has not seen get its global fit, ``"seen": False``).
    Returns {"keys": ["nll", "ece"], "n_bins", "n_resamples", "confidence_level",
    "min_count", "overall": ROW, "groups": [ROW, ...] in sorted group order}, ROW = {"group"
    (absent for overall), "n", "seen", "too_small", "global": {"nll", "ece"}, "grouped":
    {"nll", "ece"}, "difference": {"nll": {"estimate", "low", "high", "p_value", ...},
    "ece": {...}} or None}; difference = grouped - global.
    """
    if not isinstance(grouped_cal, GroupedCalibrator):
        raise InputError(f"grouped_cal: expected a fitted GroupedCalibrator, got {type(grouped_cal).__name__}")
    grouped_cal._check_fitted()
    global_cal = grouped_cal.global_ if global_cal is None else global_cal
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 2:
        raise InputError(f"min_count: expected an integer >= 2, got {min_count!r}")
    z = as_logits(logits, "logits", kind).astype(np.float64, copy=False)
    n, k = z.shape
    classes, y = encode_labels(labels, n, k)
    if not np.array_equal(np.asarray(classes), np.asarray(grouped_cal.classes_)):
        raise InputError("labels: their classes differ from those the grouped calibrator was fitted on "
                         f"({list(grouped_cal.classes_)[:6]})")
    g = _check_groups(groups, n)
    lp_global = np.asarray(global_cal.predict_log_proba(z, kind="logits"), dtype=np.float64)
    lp_grouped = grouped_cal.predict_log_proba(z, g, kind="logits")
    seen = grouped_cal._group_codes(g, n) >= 0
    opts = {"n_bins": n_bins, "n_resamples": n_resamples, "confidence_level": confidence_level, "seed": seed,
            "keys": KEYS, "method": method}

    def row(rows) -> dict:
        a, b, yy = lp_global[rows], lp_grouped[rows], y[rows]
        small = rows.size < min_count
        return {"n": int(rows.size), "seen": bool(seen[rows].all()), "too_small": small,
                "global": _values(a, yy, n_bins), "grouped": _values(b, yy, n_bins),
                "difference": None if small else paired_differences(a, b, yy, **opts)}

    values, codes = np.unique(g, return_inverse=True)
    codes = codes.reshape(-1)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=values.size))])
    table = [{"group": _scalar(v), **row(order[starts[i]:starts[i + 1]])} for i, v in enumerate(values)]
    return {"keys": list(KEYS), "n_bins": n_bins, "n_resamples": n_resamples, "confidence_level": confidence_level,
            "min_count": int(min_count), "overall": row(np.arange(n)), "groups": table}


__all__ = ["grouped_comparison"]
