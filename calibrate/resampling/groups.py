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

A binned calibration error (ECE, equal-mass ECE, L2 ECE, MCE) is biased upward by the noise
in each bin, more so in a small group than in all rows: a perfectly calibrated model shows
every group's ECE above the overall ECE, and the gap's bootstrap interval excludes 0. So the
question "is this group miscalibrated beyond the noise?" is answered by consistency
resampling instead (Broecker & Smith 2007, "Increasing the reliability of reliability
diagrams"; Vaicenavicius et al. 2019): resample r draws every row's correctness from its own
confidence, correct*_ri ~ Bernoulli(conf_i), and recomputes every group's error; a group's
``null_mean`` is the mean of those errors (what a calibrated model would show at that
group's size and confidences), its ``excess`` = value - null_mean, and its ``p_calibrated`` =
(1 + #{r: error*_r >= value}) / (1 + R), a p-value of the hypothesis that the group is
calibrated. Groups are ranked by excess for these metrics (by gap for the others). Memory:
O(groups) running sums, never (n, R).

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
#: binned calibration errors: tested against consistency resampling (see the module docstring)
CALIBRATION_METRICS = ("ece", "ece_mass", "ece_l2", "mce")
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
    null_mean: np.ndarray | None = None
    p_calibrated: np.ndarray | None = None
    overall_null_mean: np.ndarray | None = None
    overall_p_calibrated: np.ndarray | None = None

    @property
    def excess(self) -> np.ndarray:
        """(G, M) values - null_mean: the calibration error beyond what a calibrated model
        shows at the group's size (NaN for metrics without a null, or without resamples)."""
        if self.null_mean is None:
            return np.full_like(self.values, np.nan)
        return self.values - self.null_mean

    @property
    def gap(self) -> np.ndarray:
        """(G, M) values - overall (NaN where both are infinite)."""
        with np.errstate(invalid="ignore"):
            return self.values - self.overall[None, :]

    def name(self, g: int) -> str:
        """Printable name of group g ('col=value, ...')."""
        return group_label(self.columns, self.labels[g])

    def order(self, metric: str = "ece") -> np.ndarray:
        """(G,) group indices, worst first: by excess over the calibrated null for the
        calibration metrics (when resampled), else by gap (largest, or smallest for
        accuracy); small groups after the others."""
        j = self.metrics.index(metric)
        key = self.gap[:, j] if metric not in HIGHER_IS_BETTER else -self.gap[:, j]
        if metric in CALIBRATION_METRICS and self.null_mean is not None and not np.isnan(self.null_mean[:, j]).all():
            key = self.excess[:, j]
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
        null = metric in CALIBRATION_METRICS and self.null_mean is not None
        head = ["group", "n", metric, f"{int(round(self.confidence_level * 100))}% interval", "gap",
                "gap interval"] + (["if calibrated", "p"] if null else []) + cols
        rows = [["(all)", str(int(self.counts.sum())), f"{self.overall[j]:.4f}",
                 _iv(self.overall_low[j], self.overall_high[j]), "", ""]
                + ([f"{self.overall_null_mean[j]:.4f}", f"{self.overall_p_calibrated[j]:.3f}"] if null else [])
                + [f"{self.overall[self.metrics.index(c)]:.4f}" for c in cols]]
        order = self.order(metric)
        for g in order[:max_rows] if max_rows else order:
            mark = " (too small)" if self.small[g] else (" (worst)" if self.worst.get(metric) == g else "")
            rows.append([self.name(g) + mark, str(int(self.counts[g])), f"{self.values[g, j]:.4f}",
                         _iv(self.low[g, j], self.high[g, j]), f"{self.gap[g, j]:+.4f}",
                         _iv(self.gap_low[g, j], self.gap_high[g, j], signed=True)]
                        + ([f"{self.null_mean[g, j]:.4f}", f"{self.p_calibrated[g, j]:.3f}"] if null else [])
                        + [f"{self.values[g, self.metrics.index(c)]:.4f}" for c in cols])
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows]
        if max_rows and len(order) > max_rows:
            lines.append(f"... {len(order) - max_rows} more groups")
        return "\n".join(lines)

    def _null(self, g, j) -> dict:
        """{"if_calibrated", "p_calibrated"} of group g (None: all rows) and metric j, or {}."""
        if self.null_mean is None:
            return {}
        if g is None:
            return _null_entry(self.overall_null_mean[j], self.overall_p_calibrated[j])
        return _null_entry(self.null_mean[g, j], self.p_calibrated[g, j])

    def beyond_noise(self, g: int, metric: str = "ece") -> bool:
        """Whether group g is worse than all rows beyond the noise: for a calibration metric,
        p_calibrated < 1 - confidence_level (the group is miscalibrated; when resampled);
        otherwise the paired gap interval excludes 0 on the worse side."""
        j = self.metrics.index(metric)
        if self.small[g]:
            return False
        if metric in CALIBRATION_METRICS and self.p_calibrated is not None and np.isfinite(self.p_calibrated[g, j]):
            return bool(self.p_calibrated[g, j] < 1.0 - self.confidence_level)
        lo, hi = self.gap_low[g, j], self.gap_high[g, j]
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return False
        return bool(hi < 0) if metric in HIGHER_IS_BETTER else bool(lo > 0)

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
                                "gap_interval": iv(self.gap_low[g, j], self.gap_high[g, j]),
                                **self._null(g, j)}
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
            "overall": {m: {"estimate": num(self.overall[j]), "interval": iv(self.overall_low[j], self.overall_high[j]),
                            **self._null(None, j)}
                        for j, m in enumerate(self.metrics)},
            "null": "consistency resampling: correct ~ Bernoulli(confidence), the same resamples count",
            "worst": {m: (None if g is None else self.name(g)) for m, g in self.worst.items()},
            "groups": groups,
        }


def _null_entry(mean, p) -> dict:
    if mean is None or not np.isfinite(mean):
        return {}
    return {"if_calibrated": float(mean), "p_calibrated": float(p)}


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
        need_mass = "ece_mass" in interval_metrics
        boot = np.empty((R, big.size, len(cols)), dtype=np.float32)  # groups with intervals only
        boot_all = np.empty((R, len(cols)))
        r = 0
        for chunk in _weights(n, R, seed, sch):
            for w in chunk:
                pg, boot_all[r] = finish(d.sums(np.asarray(w, dtype=np.float64), mass=need_mass), interval_metrics)
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
    null_mean = p_cal = overall_null = overall_p = None
    if n_resamples:
        null_mean, p_cal, overall_null, overall_p = consistency_null(d, vals, overall, int(n_resamples), seed)
    worst = {}
    for j, m in enumerate(GROUP_METRICS):
        key = vals[:, j] if null_mean is None or m not in CALIBRATION_METRICS else vals[:, j] - null_mean[:, j]
        cand = np.flatnonzero(~small & ~np.isnan(key))  # an infinite NLL can be the worst
        if cand.size == 0:
            worst[m] = None
        else:
            pick = np.argmin(key[cand]) if m in HIGHER_IS_BETTER else np.argmax(key[cand])
            worst[m] = int(cand[pick])
    return GroupMetrics(tuple(columns), list(labels), counts, GROUP_METRICS, vals, overall, low, high, gap_low,
                        gap_high, overall_low, overall_high, small, worst, int(min_count), n_bins, int(n_resamples),
                        float(confidence_level), seed, sch, tuple(interval_metrics), null_mean, p_cal, overall_null,
                        overall_p)


def consistency_null(d: GroupDesign, values: np.ndarray, overall: np.ndarray, n_resamples: int, seed: int = 0):
    """Consistency resampling of the calibration metrics (:data:`CALIBRATION_METRICS`).

    d: the design of the rows; values: (G, M) and overall: (M,) the observed metrics.
    Resample r draws correct*_ri ~ Bernoulli(conf_i) for every row (seeded stream
    ``np.random.default_rng([seed, 1])``, independent of the bootstrap's) and recomputes the
    binned errors of every group and of all rows from the same bins. Returns (null_mean
    (G, M), p (G, M), overall null_mean (M,), overall p (M,)); NaN for the other metrics.
    p = (1 + #{r: error*_r >= observed}) / (1 + R).
    """
    G, B, M = d.G, d.B, len(GROUP_METRICS)
    cols = [GROUP_METRICS.index(m) for m in CALIBRATION_METRICS]
    rng = np.random.default_rng([int(seed), 1])
    s = d.sums()  # counts and confidence sums do not change; only the correctness sums do
    tot = np.zeros((G + 1, len(cols)))
    ge = np.zeros((G + 1, len(cols)))
    obs = np.vstack([values[:, cols], overall[cols][None, :]])
    tol = 1e-12 * np.maximum(1.0, np.abs(obs))  # an error equal to the observed one, up to rounding, counts
    u = np.empty(d.n)
    for _ in range(n_resamples):
        rng.random(out=u)
        ok = (u < d.conf).astype(np.float64)
        s["width"][2] = np.bincount(d.code_width, weights=ok, minlength=G * B).reshape(G, B)
        s["mass"][2] = np.bincount(d.code_mass, weights=ok, minlength=G * B).reshape(G, B)
        s["overall_mass"][2] = np.bincount(d.code_overall_mass, weights=ok, minlength=B)
        pg, po = finish(s, CALIBRATION_METRICS)
        e = np.vstack([pg, po[None, :]])
        tot += e
        ge += e >= obs - tol
    null_mean = np.full((G, M), np.nan)
    p = np.full((G, M), np.nan)
    overall_null, overall_p = np.full(M, np.nan), np.full(M, np.nan)
    null_mean[:, cols] = tot[:G] / n_resamples
    p[:, cols] = (1.0 + ge[:G]) / (1.0 + n_resamples)
    overall_null[cols] = tot[G] / n_resamples
    overall_p[cols] = (1.0 + ge[G]) / (1.0 + n_resamples)
    return null_mean, p, overall_null, overall_p


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
