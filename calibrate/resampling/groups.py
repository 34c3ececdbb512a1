"""Per-group metrics with bootstrap intervals, the worst group, and each group's gap to the
overall value with a paired interval (public as :func:`calibrate.groups.group_metrics`).

The numbers are those of :mod:`calibrate.metrics.groups` (every per-group metric equals the
metric of :mod:`calibrate.metrics` applied to that group's rows). The bootstrap resamples
the rows, never the groups: resample r gives every row i a weight w_ri, and every group's
and the overall value are computed from the same weights, so

- the overall interval is that of :func:`calibrate.resampling.tables.evaluate_with_ci`
  with ``method="percentile"``: the weights are those of
  :mod:`calibrate.resampling.bootstrap` with the same seed and scheme ("multinomial":
  ``rng.integers(0, n, (R, n))`` as scipy.stats.bootstrap draws them, the same draws as
  its engine, so the same numbers up to float64 summation order; "poisson": independent
  Poisson(1) weights, drawn resample by resample, the same law but not the same draws as
  its engine, which draws them block of rows by block of rows);
- a group's gap (value_g - overall) has a *paired* interval: the percentiles of
  value_g,r - overall_r over the same resamples.

How: the weights of a chunk of resamples are drawn as :func:`bootstrap._weights` draws
them (a chunk is at most 16 MiB of counts, so at most one (n,) row for n > 2 million);
each resample's per-group sums are np.bincount over the (n,) (group, bin) codes, then
finished into (G + 1, M) values and kept as float32. Memory: the (n,) values and codes,
one chunk of weights, and R x (groups of at least min_count rows) x M float32 resampled
values (1000 resamples, 10,000 such groups, 6 interval metrics: 240 MB); never (n, R).

Groups of fewer than ``min_count`` rows (default 30, :data:`MIN_COUNT`) are "too small":
their numbers are given, without intervals, and they are never the worst group.
Intervals are percentile intervals (Efron & Tibshirani 1993, 13.3) at ``confidence_level``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from calibrate._core.validation import (
    InputError,
    check_choice,
    check_confidence_level,
    check_labels,
    check_n_resamples,
)
from calibrate.metrics import calibration as _calibration
from calibrate.metrics.groups import (
    GROUP_METRICS,
    HIGHER_IS_BETTER,
    MIN_COUNT,
    GroupDesign,
    finish,
    group_codes,
    group_label,
    row_values,
)
from calibrate.resampling.bootstrap import SCHEMES, _scheme, _weights

#: metrics given bootstrap intervals by default (each adds R x (G + 1) float32 values)
INTERVAL_METRICS = ("accuracy", "ece", "ece_mass", "mce", "nll", "brier")
_QUANTILE_BLOCK_VALUES = 1 << 21  # resampled values (float64) whose quantiles are taken at once: 16 MiB


@dataclass
class GroupMetrics:
    """Per-group metrics of one prediction.

    columns: names of the group columns; labels: G tuples of column values;
    counts: (G,) rows per group; metrics: names of the last axis (GROUP_METRICS);
    values: (G, M) per-group values; overall: (M,) the values on all rows;
    low, high: (G, M) interval of each value; gap_low, gap_high: (G, M) paired interval of
    values - overall (NaN for small groups and metrics without an interval);
    overall_low, overall_high: (M,); small: (G,) bool, fewer than min_count rows;
    worst: {metric: index of the worst group that is not small, or None}.
    """

    columns: tuple
    labels: list
    counts: np.ndarray
    metrics: tuple
    values: np.ndarray
    overall: np.ndarray
    low: np.ndarray
    high: np.ndarray
    gap_low: np.ndarray
    gap_high: np.ndarray
    overall_low: np.ndarray
    overall_high: np.ndarray
    small: np.ndarray
    worst: dict
    min_count: int
    n_bins: int
    n_resamples: int
    confidence_level: float
    seed: int
    scheme: str
    interval_metrics: tuple = field(default_factory=tuple)

    @property
    def gap(self) -> np.ndarray:
        """(G, M) values - overall (NaN where both are infinite)."""
        with np.errstate(invalid="ignore"):
            return self.values - self.overall[None, :]

    def name(self, g: int) -> str:
        """Printable name of group g ('col=value, ...')."""
        return group_label(self.columns, self.labels[g])

    def order(self, metric: str = "ece") -> np.ndarray:
        """(G,) group indices, worst gap first (largest, or smallest for accuracy); small
        groups after the others."""
        j = self.metrics.index(metric)
        key = self.gap[:, j] if metric not in HIGHER_IS_BETTER else -self.gap[:, j]
        key = np.where(np.isnan(key), -np.inf, key)
        return np.lexsort((-key, self.small))

    def worst_groups(self, metric: str = "ece", count: int = 4) -> list:
        """Indices of up to ``count`` groups with the worst gap that are not small."""
        return [int(g) for g in self.order(metric) if not self.small[g]][:count]

    def table(self, metric: str = "ece", max_rows: int | None = None) -> str:
        """Text table of the groups sorted by the gap of ``metric`` (worst first): rows, the
        metric with its interval, the gap with its paired interval, accuracy, NLL, Brier."""
        j = self.metrics.index(metric)
        cols = [m for m in ("accuracy", "nll", "brier") if m != metric]
        head = ["group", "n", metric, f"{int(round(self.confidence_level * 100))}% interval", "gap",
                "gap interval"] + cols
        rows = [["(all)", str(int(self.counts.sum())), f"{self.overall[j]:.4f}",
                 _iv(self.overall_low[j], self.overall_high[j]), "", ""]
                + [f"{self.overall[self.metrics.index(c)]:.4f}" for c in cols]]
        order = self.order(metric)
        for g in order[:max_rows] if max_rows else order:
            mark = " (too small)" if self.small[g] else (" (worst)" if self.worst.get(metric) == g else "")
            rows.append([self.name(g) + mark, str(int(self.counts[g])), f"{self.values[g, j]:.4f}",
                         _iv(self.low[g, j], self.high[g, j]), f"{self.gap[g, j]:+.4f}",
                         _iv(self.gap_low[g, j], self.gap_high[g, j], signed=True)]
                        + [f"{self.values[g, self.metrics.index(c)]:.4f}" for c in cols])
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows]
        if max_rows and len(order) > max_rows:
            lines.append(f"... {len(order) - max_rows} more groups")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able dict: settings, overall values with intervals, and one entry per group
        (sorted by the ECE gap, worst first) with its values, intervals and gaps."""
        def iv(lo, hi):
            return None if not (np.isfinite(lo) and np.isfinite(hi)) else [float(lo), float(hi)]

        def num(v):
            return float(v) if np.isfinite(v) else None

        groups = []
        for g in self.order("ece"):
            groups.append({
                "group": self.name(g),
                "values": {c: _py(v) for c, v in zip(self.columns, self.labels[g])},
                "n": int(self.counts[g]),
                "too_small": bool(self.small[g]),
                "metrics": {m: {"estimate": num(self.values[g, j]), "interval": iv(self.low[g, j], self.high[g, j]),
                                "gap": num(self.gap[g, j]),
                                "gap_interval": iv(self.gap_low[g, j], self.gap_high[g, j])}
                            for j, m in enumerate(self.metrics)},
            })
        return {
            "columns": list(self.columns),
            "n": int(self.counts.sum()),
            "n_groups": len(self.labels),
            "min_count": int(self.min_count),
            "n_bins": int(self.n_bins),
            "n_resamples": int(self.n_resamples),
            "confidence_level": float(self.confidence_level),
            "seed": self.seed,
            "scheme": self.scheme,
            "interval": "percentile",
            "interval_metrics": list(self.interval_metrics),
            "overall": {m: {"estimate": num(self.overall[j]), "interval": iv(self.overall_low[j], self.overall_high[j])}
                        for j, m in enumerate(self.metrics)},
            "worst": {m: (None if g is None else self.name(g)) for m, g in self.worst.items()},
            "groups": groups,
        }


def _py(v):
    return v.item() if hasattr(v, "item") else v


def _iv(lo, hi, signed=False) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "-"
    f = "{:+.4f}" if signed else "{:.4f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def group_metrics_from_rows(values, codes, columns, labels, *, n_bins: int = 15, n_resamples: int = 1000,
                            confidence_level: float = 0.95, seed: int = 0, min_count: int = MIN_COUNT,
                            scheme: str = "auto", interval_metrics=INTERVAL_METRICS) -> GroupMetrics:
    """:func:`group_metrics` from the (4, n) per-row values (conf, correct, nll, brier: see
    :func:`calibrate.metrics.groups.row_values`) and (n,) group codes 0..G-1 with their
    ``columns`` names and G ``labels`` (as :func:`calibrate.metrics.groups.group_codes` gives)."""
    n_bins = _calibration.check_n_bins(n_bins)
    check_confidence_level(confidence_level)
    n_resamples = check_n_resamples(n_resamples, allow_zero=True)
    check_choice(scheme, "scheme", SCHEMES)
    unknown = [m for m in interval_metrics if m not in GROUP_METRICS]
    if unknown:
        raise InputError(f"interval_metrics: expected names of {', '.join(GROUP_METRICS)}, got {unknown}")
    if int(min_count) < 1:
        raise InputError(f"min_count: expected an integer >= 1, got {min_count}")
    G = len(labels)
    d = GroupDesign(values, codes, G, n_bins)
    n = d.n
    if n == 0:
        raise InputError("labels: expected at least one row, got none")
    vals, overall = finish(d.sums())
    counts = np.bincount(d.codes, minlength=G).astype(np.int64)
    small = counts < int(min_count)
    M = len(GROUP_METRICS)
    low, high, gap_low, gap_high = (np.full((G, M), np.nan) for _ in range(4))
    overall_low, overall_high = np.full(M, np.nan), np.full(M, np.nan)
    sch = _scheme(scheme, n)
    cols = [GROUP_METRICS.index(m) for m in interval_metrics]
    if n_resamples and cols:
        R = int(n_resamples)
        big = np.flatnonzero(~small)
        boot = np.empty((R, big.size, len(cols)), dtype=np.float32)  # groups with intervals only
        boot_all = np.empty((R, len(cols)))
        r = 0
        for chunk in _weights(n, R, seed, sch):
            for w in chunk:
                pg, boot_all[r] = finish(d.sums(np.asarray(w, dtype=np.float64)), interval_metrics)
                boot[r] = pg[big]
                r += 1
            del chunk
        a = (1.0 - confidence_level) / 2.0
        overall_low[cols], overall_high[cols] = _quantiles(boot_all, a)
        step = max(1, _QUANTILE_BLOCK_VALUES // R)
        for c, j in enumerate(cols):
            for a0 in range(0, big.size, step):  # groups in blocks: float64 temporaries of a bounded size
                gb = big[a0:a0 + step]
                v = boot[:, a0:a0 + step, c].astype(np.float64)
                low[gb, j], high[gb, j] = _quantiles(v, a)
                with np.errstate(invalid="ignore"):  # inf - inf (an infinite NLL): NaN, skipped
                    v -= boot_all[:, c][:, None]
                gap_low[gb, j], gap_high[gb, j] = _quantiles(v, a)
        del boot
    worst = {}
    for j, m in enumerate(GROUP_METRICS):
        cand = np.flatnonzero(~small & ~np.isnan(vals[:, j]))  # an infinite NLL can be the worst
        if cand.size == 0:
            worst[m] = None
        else:
            pick = np.argmin(vals[cand, j]) if m in HIGHER_IS_BETTER else np.argmax(vals[cand, j])
            worst[m] = int(cand[pick])
    return GroupMetrics(tuple(columns), list(labels), counts, GROUP_METRICS, vals, overall, low, high, gap_low,
                        gap_high, overall_low, overall_high, small, worst, int(min_count), n_bins, int(n_resamples),
                        float(confidence_level), seed, sch, tuple(interval_metrics))


def _quantiles(v: np.ndarray, a: float):
    """The a and 1 - a quantiles over axis 0 (NaN resamples, groups of zero weight, skipped)."""
    if not np.isnan(v).any():
        with np.errstate(invalid="ignore"):  # infinite values (an infinite NLL)
            lo, hi = np.quantile(v, [a, 1.0 - a], axis=0)
        return lo, hi
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a group NaN on every resample: NaN interval
        lo, hi = np.nanquantile(v, [a, 1.0 - a], axis=0)
    return lo, hi


def group_metrics(log_probs_or_logits, labels, groups, *, kind: str = "logits", n_bins: int = 15,
                  n_resamples: int = 1000, confidence_level: float = 0.95, seed: int = 0,
                  min_count: int = MIN_COUNT, scheme: str = "auto",
                  interval_metrics=INTERVAL_METRICS, transform=None) -> GroupMetrics:
    """Every per-group metric (:data:`calibrate.metrics.groups.GROUP_METRICS`) with bootstrap
    intervals, the worst group per metric and each group's paired gap to the overall value.

    log_probs_or_logits: (n, k) float, logits or log-probabilities (kind "logits" or
    "log_probs": a log-softmax is applied, exact NLL) or probabilities (kind "probs");
    labels: (n,) int in 0..k-1; groups: one (n,) array, or a dict {name: (n,) array} / list
    of them (their combinations that occur are the groups); n_bins: B for the binned
    metrics; n_resamples: R (0: no intervals); scheme: "auto" | "multinomial" | "poisson"
    (as :mod:`calibrate.resampling.bootstrap`); min_count: groups with fewer rows are
    "too small" (no interval, never the worst); interval_metrics: the metrics that get
    intervals (see the module docstring for the memory they take); transform: optional
    f((m, k) logits) -> (m, k) log-probabilities applied block by block (a calibrator).
    """
    x = np.asarray(log_probs_or_logits)
    if x.ndim != 2 or x.shape[1] < 2:
        raise InputError(f"log_probs_or_logits: expected shape (n, k) with k >= 2, got {x.shape}")
    y = check_labels(np.asarray(labels), x.shape[0], x.shape[1])
    codes, columns, glabels = group_codes(groups, x.shape[0])
    rows = row_values(x, y, kind, transform=transform)
    return group_metrics_from_rows(rows, codes, columns, glabels, n_bins=n_bins, n_resamples=n_resamples,
                                   confidence_level=confidence_level, seed=seed, min_count=min_count, scheme=scheme,
                                   interval_metrics=interval_metrics)
