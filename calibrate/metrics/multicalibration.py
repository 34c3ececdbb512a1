"""Multicalibration error over segments built from feature columns (MCGrad's definition).

Segments (as MCGrad's ``MulticalibrationError`` builds them, Guy, Haimovich, Linder, Okati,
Perini, Tax & Tygert 2025, "Measuring multi-calibration"):

- a categorical column gives one segment per value; with more than ``max_categories``
  values the ``max_categories - 1`` most frequent are kept (ties in frequency: the
  smaller value first) and the rest pooled into one segment, :data:`OTHER`; a missing
  value (None, NaN) is a value of its own;
- a numerical column with at most ``n_bins`` distinct values gives one segment per
  value; otherwise it is cut at its quantiles: edges = the distinct values of the
  ``n_bins + 1`` quantiles at 0, 1/n_bins, ..., 1 (linear interpolation), intervals
  (e_i, e_{i+1}], the first also holding e_0 (pandas ``cut`` with ``include_lowest``,
  ``duplicates="drop"``); NaN is a segment of its own;
- intersections: depth 0 is the whole data set, depth d every combination of d
  columns (categorical columns first, then numerical, in the order given) and of their
  values; depths 0 .. ``max_depth``;
- a segment is kept when it holds at least ``min_segment_size`` rows; at most
  ``max_segments`` are kept, in the order depth, column combination, values (sorted).

Per segment (its rows in the global score order): ECCE = the range of the cumulative
differences normalised by the segment's total weight (:mod:`calibrate.metrics.cumulative`),
sigma = sqrt(sum w^2 p (1 - p)) / sum w, ratio = ECCE / sigma, p-value from the Kuiper law.
The multicalibration error (MCGrad's ``mce_sigma``) is the largest ratio over the kept
segments, the whole data set included; ``mce`` = mce_sigma x the global sigma; ``mce_relative``
= 100 mce / min(prevalence, 1 - prevalence); ``mce_pvalue`` = the Kuiper tail at
mce_sigma (the smallest segment p-value, not adjusted for multiple testing);
``mde`` = 5 x the global sigma (the minimum detectable error).

Differences from MCGrad, by design: sums in float64 (MCGrad's default is float32); the
Kuiper tail is evaluated to full relative accuracy (MCGrad returns machine epsilon beyond
8.27 sigma and 1 below 1e-20); ties in the scores are ordered as ``ties`` says (MCGrad's
sort leaves their order to the sort algorithm); values are ordered sorted, so
``max_segments`` cuts at the same segments whatever the data order.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from calibrate._core.validation import InputError
from calibrate.metrics.cumulative import (
    check_scores_outcomes,
    curve_sorted,
    kuiper_sf,
    scores_outcomes,
    sort_order,
)

OTHER = "(other)"  # the pooled infrequent categories


@dataclass(frozen=True)
class Column:
    """One segmenting column: codes (n,) int in [0, len(values)) and the value of each code."""

    name: str
    codes: np.ndarray
    values: list


@dataclass(frozen=True)
class MulticalibrationResult:
    """Per-segment cumulative calibration and the multicalibration error.

    segments: list of S dicts {column: value} (the first, {}, is the whole data set; a
    numerical bin's value is its interval (low, high)); size: (S,) int rows;
    ecce, sigma, ratio, pvalue: (S,) float64. The scalars are MCGrad's (module docstring).
    """

    segments: list
    size: np.ndarray
    ecce: np.ndarray
    sigma: np.ndarray
    ratio: np.ndarray
    pvalue: np.ndarray
    prevalence: float
    mce_sigma: float
    mce: float
    mce_relative: float
    mce_pvalue: float
    mde: float
    mde_relative: float

    @property
    def global_ecce(self) -> float:
        return float(self.ecce[0])

    @property
    def global_sigma(self) -> float:
        return float(self.sigma[0])

    @property
    def global_ratio(self) -> float:
        return float(self.ratio[0])

    @property
    def global_pvalue(self) -> float:
        return float(self.pvalue[0])

    @property
    def worst(self) -> int:
        """Index of the segment with the largest ratio (the first on ties)."""
        return int(np.argmax(self.ratio))

    def table(self) -> list[dict]:
        """One dict per segment (segment, size, ecce, sigma, ratio, pvalue), largest ratio first."""
        order = np.argsort(-self.ratio, kind="stable")
        return [{"segment": self.segments[i], "size": int(self.size[i]), "ecce": float(self.ecce[i]),
                 "sigma": float(self.sigma[i]), "ratio": float(self.ratio[i]), "pvalue": float(self.pvalue[i])}
                for i in order]


# ----------------------------------------------------------------------------- columns
def _column_values(features, name, n):
    try:
        col = features[name]
    except (KeyError, IndexError, TypeError, ValueError):
        raise InputError(f"features: no column {name!r}") from None
    arr = np.asarray(col)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"features[{name!r}]: expected shape ({n},), one value per row, got shape {arr.shape}")
    return arr


def _is_missing(v) -> bool:
    """None, a float NaN, or pandas' NA / NaT."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ in ("NAType", "NaTType")


def categorical_column(name: str, values, max_categories: int | None = 3) -> Column:
    """Codes of a categorical column (n,): one per value, the rare ones pooled (module docstring)."""
    arr = np.asarray(values)
    n = arr.shape[0]
    uniq = inverse = None
    if arr.dtype.kind in "biufUSM":
        uniq, inverse = np.unique(arr, return_inverse=True)  # NaN: one value, sorted last
        uniq = [None if isinstance(u, float) and math.isnan(u) else u.item() if hasattr(u, "item") else u
                for u in uniq]
    else:
        index: dict = {}
        inverse = np.empty(n, dtype=np.intp)
        for i, v in enumerate(arr.tolist()):
            key = None if _is_missing(v) else v
            inverse[i] = index.setdefault(key, len(index))
        keys = list(index)
        try:  # sorted values (missing last) when they compare
            ordered = sorted(k for k in keys if k is not None) + ([None] if None in index else [])
        except TypeError:
            ordered = keys
        remap = np.array([ordered.index(k) for k in keys], dtype=np.intp)
        inverse = remap[inverse] if n else inverse
        uniq = ordered
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=len(uniq))
    if max_categories is not None and len(uniq) > max_categories:
        keep = np.sort(np.argsort(-counts, kind="stable")[: max_categories - 1])
        remap = np.full(len(uniq), len(keep), dtype=np.intp)
        remap[keep] = np.arange(len(keep))
        return Column(name, remap[inverse], [uniq[i] for i in keep] + [OTHER])
    return Column(name, inverse, list(uniq))


def numerical_column(name: str, values, n_bins: int = 3) -> Column:
    """Codes of a numerical column (n,): its values, or quantile bins (module docstring)."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"features[{name!r}]: expected numbers for a numerical column") from None
    nan = np.isnan(v)
    finite = v[~nan]
    distinct = np.unique(finite)
    if distinct.size <= n_bins:
        codes = np.searchsorted(distinct, v)
        labels: list = [float(x) for x in distinct]
    else:
        # np.quantile, as pandas' Series.quantile (>= 2.x) evaluates it: the same edges, bit for bit
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, n_bins + 1)))
        codes = np.searchsorted(edges, v, side="left") - 1
        codes[v == edges[0]] = 0
        labels = [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]
    if nan.any():
        codes = np.where(nan, len(labels), codes)
        labels.append(None)
    return Column(name, codes.astype(np.intp), labels)


def segment_columns(features, categorical=(), numerical=(), *, n: int, n_bins: int = 3,
                    max_categories: int | None = 3) -> list[Column]:
    """The coded columns: categorical ones first, then numerical, in the order given."""
    if isinstance(categorical, str) or isinstance(numerical, str):
        raise InputError("categorical / numerical: expected lists of column names, got a string")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"n_bins: expected a positive integer, got {n_bins!r}")
    if max_categories is not None and (isinstance(max_categories, bool) or not isinstance(
            max_categories, (int, np.integer)) or max_categories < 1):
        raise InputError(f"max_categories: expected a positive integer or None, got {max_categories!r}")
    names = list(categorical) + list(numerical)
    if len(set(names)) != len(names):
        raise InputError(f"categorical / numerical: a column is named twice in {names}")
    cols = [categorical_column(c, _column_values(features, c, n), max_categories) for c in categorical]
    cols += [numerical_column(c, _column_values(features, c, n), n_bins) for c in numerical]
    return cols


def iter_segments(columns: list[Column], n: int, *, max_depth: int = 3, min_segment_size: int = 10,
                  max_segments: int | None = 1000):
    """Yield (definition dict, row indices (m,) increasing) for every kept segment, in order."""
    if isinstance(max_depth, bool) or not isinstance(max_depth, (int, np.integer)) or max_depth < 0:
        raise InputError(f"max_depth: expected an integer >= 0, got {max_depth!r}")
    if isinstance(min_segment_size, bool) or not isinstance(min_segment_size, (int, np.integer)) or \
            min_segment_size < 1:
        raise InputError(f"min_segment_size: expected a positive integer, got {min_segment_size!r}")
    if max_segments is not None and (not isinstance(max_segments, (int, np.integer)) or max_segments < 1):
        raise InputError(f"max_segments: expected a positive integer or None, got {max_segments!r}")
    kept = 0
    for depth in range(0, min(max_depth, len(columns)) + 1):
        for combo in itertools.combinations(columns, depth):
            key = np.zeros(n, dtype=np.int64)
            radix = 1
            for col in reversed(combo):  # mixed radix: the first column varies slowest
                key += col.codes.astype(np.int64) * radix
                radix *= len(col.values)
            counts = np.bincount(key, minlength=radix)
            big = np.flatnonzero(counts >= min_segment_size)
            if big.size == 0:
                continue
            order = np.argsort(key, kind="stable")
            starts = np.concatenate([[0], np.cumsum(counts)])
            for code in big:
                rows = order[starts[code]:starts[code + 1]]
                definition, rest = {}, int(code)
                for col, r in zip(reversed(combo), _digits(rest, [len(c.values) for c in reversed(combo)])):
                    definition[col.name] = col.values[r]
                yield dict(reversed(list(definition.items()))), rows
                kept += 1
                if max_segments is not None and kept >= max_segments:
                    return


def _digits(code: int, radices: list[int]) -> list[int]:
    out = []
    for r in radices:
        out.append(code % r)
        code //= r
    return out


# ----------------------------------------------------------------------------- the metric
def multicalibration_error_from_scores(scores, outcomes, features, *, categorical=(), numerical=(),
                                       max_depth: int = 3, n_bins: int = 3, max_categories: int | None = 3,
                                       min_segment_size: int = 10, max_segments: int | None = 1000,
                                       sample_weight=None, ties: str = "random",
                                       seed: int = 0) -> MulticalibrationResult:
    """Multicalibration error of scores (n,) in [0, 1] against outcomes (n,) 0/1.

    features: a mapping (dict of (n,) arrays, or a pandas DataFrame) holding the columns
    named in ``categorical`` and ``numerical``. See the module docstring for the segments
    and the statistics.
    """
    s, r, w = check_scores_outcomes(scores, outcomes, sample_weight)
    n = s.shape[0]
    columns = segment_columns(features, categorical, numerical, n=n, n_bins=n_bins,
                              max_categories=max_categories)
    order = sort_order(s, ties, seed)
    # the columns in score order: each segment's rows then come out in score order
    sorted_columns = [Column(c.name, c.codes[order], c.values) for c in columns]
    ss, rs = s[order], r[order]
    ws = None if w is None else w[order]
    defs, size, ecce, sigma = [], [], [], []
    for definition, pos in iter_segments(sorted_columns, n, max_depth=max_depth,
                                         min_segment_size=min_segment_size, max_segments=max_segments):
        _, c, sg = curve_sorted(ss[pos], rs[pos], None if ws is None else ws[pos])
        defs.append(definition)
        size.append(pos.size)
        ecce.append(float(c.max() - c.min()))
        sigma.append(sg)
    if not defs:  # the whole data set is the largest segment: n < min_segment_size
        raise InputError(f"min_segment_size: no segment holds {min_segment_size} rows (the data have {n})")
    ecce_a, sigma_a = np.array(ecce), np.array(sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sigma_a > 0, ecce_a / np.where(sigma_a > 0, sigma_a, 1.0),
                         np.where(ecce_a > 0, np.inf, 0.0))
    pvalue = np.where(np.isinf(ratio), 0.0, kuiper_sf(np.where(np.isinf(ratio), 0.0, ratio)))
    mean = float(np.average(r, weights=w))
    prevalence = min(mean, 1.0 - mean)
    mce_sigma = float(ratio.max())
    global_sigma = float(sigma_a[0])  # segment 0 is the whole data set
    mce = mce_sigma * global_sigma

    def rel(x):
        return float(100.0 * x / prevalence) if prevalence > 0 else math.inf

    return MulticalibrationResult(
        segments=defs, size=np.array(size, dtype=np.int64), ecce=ecce_a, sigma=sigma_a, ratio=ratio,
        pvalue=pvalue, prevalence=prevalence, mce_sigma=mce_sigma, mce=mce, mce_relative=rel(mce),
        mce_pvalue=0.0 if math.isinf(mce_sigma) else float(kuiper_sf(mce_sigma)),
        mde=5.0 * global_sigma, mde_relative=rel(5.0 * global_sigma))


def multicalibration_error(probs, labels, features, *, class_index: int | None = None, categorical=(),
                           numerical=(), max_depth: int = 3, n_bins: int = 3, max_categories: int | None = 3,
                           min_segment_size: int = 10, max_segments: int | None = 1000, sample_weight=None,
                           ties: str = "random", seed: int = 0) -> MulticalibrationResult:
    """Multicalibration error of probs (n, k) or (n,) against labels (n,).

    Top-label for (n, k) rows, P(class 1) for (n,) scores, or class ``class_index``
    (as :func:`calibrate.metrics.cumulative.cumulative_calibration`); the rest as
    :func:`multicalibration_error_from_scores`.
    """
    s, r = scores_outcomes(probs, labels, class_index)
    return multicalibration_error_from_scores(
        s, r, features, categorical=categorical, numerical=numerical, max_depth=max_depth, n_bins=n_bins,
        max_categories=max_categories, min_segment_size=min_segment_size, max_segments=max_segments,
        sample_weight=sample_weight, ties=ties, seed=seed)


__all__ = [
    "OTHER",
    "Column",
    "MulticalibrationResult",
    "categorical_column",
    "iter_segments",
    "multicalibration_error",
    "multicalibration_error_from_scores",
    "numerical_column",
    "segment_columns",
]
