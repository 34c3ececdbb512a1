"""A multicalibration post-processor: patch the scores segment by segment until no
(segment, score bin) cell is off by more than a tolerance.

    mc = MulticalibrationPostprocessor(categorical=["hospital"], numerical=["age"])
    mc.fit(val_probs, val_labels, val_features, validation_fraction=0.3, seed=0)
    new_scores = mc.predict(test_probs, test_features)      # (n,) patched scores
    mc.save("mc.json");  mc = MulticalibrationPostprocessor.load("mc.json")

In the spirit of Hebert-Johnson, Kim, Reingold & Rothblum 2018 ("Multicalibration:
calibration for the (computationally-identifiable) masses", ICML), with the collection of
sets given by feature columns. Scores s (n,) in [0, 1] are P(class 1) of (n,) binary scores,
the top-label confidence of (n, k) probabilities, or P(class ``class_index``) (one-vs-rest),
against the matching 0/1 outcomes r (as :func:`calibrate.metrics.cumulative.scores_outcomes`).

Segments are those of :mod:`calibrate.metrics.multicalibration` (``segment_columns`` /
``iter_segments``: categorical values, numerical columns cut at quantiles, intersections to
``max_depth``, at least ``min_segment_size`` rows, at most ``max_segments``). Score bins are
``n_score_bins`` equal-width bins of [0, 1] of the *current* scores, bin(s) =
min(floor(s B), B - 1). One iteration:

1. for every segment S and bin v, the cell C = S ∩ {bin(s) = v}: its count m_C and mean
   residual rbar_C = mean_{i in C} (r_i - s_i);
2. the cells that qualify have m_C >= ``min_mass`` x n (n: the fitting rows) and
   |rbar_C| > ``alpha``; among them the patched one maximises m_C rbar_C^2 (the fall of
   the summed squared error the patch buys; ties: the first segment, then the lower bin);
3. the patch s_i <- clip(s_i + ``step`` rbar_C, 0, 1) for i in C.

Stopping rule: no cell qualifies (``converged_`` True), or ``max_iter`` patches (a
warning). With step = 1 each patch lowers the sum of squared errors sum (r_i - s_i)^2 by at
least min_mass n alpha^2 (clipping toward [0, 1] never raises it, as r_i is in [0, 1]), so
at most 1 / (min_mass alpha^2) patches are ever made (HJKRR's potential argument).

The patches are stored as data, in order: the segment (column, value) pairs, the bin, the
shift. ``predict`` recomputes the columns' codes on new rows from the stored codings
(categorical: a kept value, else the pooled "(other)" segment where there was one, else no
segment of that column; numerical: the fitted quantile intervals, the first and the last
extended to -inf and +inf, or, for a column with few distinct values, exactly those values)
and applies the patches in order, so on the fitting rows it reproduces the fitted scores
bit for bit.

Over-fitting check: ``fit(..., validation_fraction=f, seed=s)`` holds out a random
fraction f of the rows, fits on the rest, and reports the multicalibration error
(:func:`calibrate.metrics.multicalibration.multicalibration_error_from_scores`, same segment
settings) of the held-out rows before and after (``holdout_``), with a CalibrationWarning
when it got worse. :meth:`score` does the same on any rows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator

from calibrate._core.validation import CalibrationWarning, InputError, check_labels, check_scores
from calibrate.calibrators._schema import (
    Bool,
    Field,
    ListOf,
    Number,
    Record,
    decode_fields,
)
from calibrate.calibrators.base import JsonFileMixin, NotFittedError, _encode
from calibrate.metrics.multicalibration import (
    OTHER,
    iter_segments,
    multicalibration_error_from_scores,
    segment_columns,
)

FORMAT = "calibrate.multicalibration_postprocessor"


def _scores(probs, class_index) -> tuple[np.ndarray, int]:
    """(scores (n,) float64 in [0, 1], k): P(class 1), top-label confidence, or P(class_index)."""
    p = check_scores(probs, "scores", kind="probs")
    k = p.shape[1]
    if class_index is None:
        if np.ndim(probs) == 1:
            return p[:, 1].astype(np.float64), k
        return p[np.arange(p.shape[0]), p.argmax(axis=1)].astype(np.float64), k
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < k:
        raise InputError(f"class_index: expected an integer in [0, {k}), got {class_index!r}")
    return p[:, class_index].astype(np.float64), k


def _outcomes(probs, labels, class_index) -> np.ndarray:
    """(n,) float64 0/1 outcomes matching :func:`_scores`."""
    p = check_scores(probs, "scores", kind="probs")
    y = check_labels(labels, p.shape[0], p.shape[1], "labels")
    if class_index is None:
        return ((y == 1) if np.ndim(probs) == 1 else (p.argmax(axis=1) == y)).astype(np.float64)
    return (y == class_index).astype(np.float64)


def _subset(features, names, rows) -> dict:
    """{name: (m,) the rows of that feature column}."""
    out = {}
    for name in names:
        try:
            col = features[name]
        except (KeyError, IndexError, TypeError, ValueError):
            raise InputError(f"features: no column {name!r}") from None
        out[name] = np.asarray(col)[rows] if rows is not None else np.asarray(col)
    return out


def _bins(s: np.ndarray, n_bins: int) -> np.ndarray:
    return np.minimum((s * n_bins).astype(np.int64), n_bins - 1)


def _json_value(v):
    """A categorical value as a JSON scalar (None for missing)."""
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    raise InputError(f"features: the category {v!r} cannot be saved as JSON; use strings or numbers")


def _column_spec(col, kind: str) -> dict:
    """The stored coding of one Column of calibrate.metrics.multicalibration."""
    if kind == "categorical":
        pooled = bool(col.values) and col.values[-1] == OTHER
        values = col.values[:-1] if pooled else col.values
        return {"name": col.name, "kind": kind, "values": [_json_value(v) for v in values], "pooled": pooled,
                "nan": False, "intervals": False}
    nan = bool(col.values) and col.values[-1] is None
    values = col.values[:-1] if nan else col.values
    intervals = bool(values) and isinstance(values[0], tuple)
    return {"name": col.name, "kind": kind, "values": [list(v) if intervals else float(v) for v in values],
            "pooled": False, "nan": nan, "intervals": intervals}


def _code(spec: dict, values) -> np.ndarray:
    """(n,) code of each row in the stored coding ``spec``, -1 for a row in none of its segments."""
    arr = np.asarray(values)
    if spec["kind"] == "numerical":
        v = arr.astype(np.float64)
        nan = np.isnan(v)
        m = len(spec["values"])
        if spec["intervals"]:
            edges = np.array([spec["values"][0][0]] + [b for _, b in spec["values"]])
            code = np.searchsorted(edges, v, side="left") - 1
            code = np.clip(code, 0, m - 1)  # below the first edge: the first bin; above the last: the last
        else:
            distinct = np.array(spec["values"], dtype=np.float64)
            idx = np.searchsorted(distinct, v)
            hit = idx < m
            hit[hit] = distinct[idx[hit]] == v[hit]
            code = np.where(hit, idx, -1)
        return np.where(nan, m if spec["nan"] else -1, code).astype(np.int64)
    lookup: dict = {}
    for i, val in enumerate(spec["values"]):
        lookup[val] = i
    default = len(spec["values"]) if spec["pooled"] else -1

    def key(v):
        if isinstance(v, np.generic):
            v = v.item()
        if v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ in ("NAType", "NaTType"):
            return None
        return v

    if arr.dtype.kind in "biufU" and arr.size:
        uniq, inverse = np.unique(arr, return_inverse=True)
        mapped = np.array([lookup.get(key(u), default) for u in uniq], dtype=np.int64)
        return mapped[inverse.reshape(-1)]
    return np.array([lookup.get(key(v), default) for v in arr.tolist()], dtype=np.int64)


class MulticalibrationPostprocessor(JsonFileMixin, BaseEstimator):
    """Iterative patching of (segment, score bin) cells (see the module docstring).

    categorical, numerical: feature column names; max_depth, n_bins, max_categories,
    min_segment_size, max_segments: the segments (as calibrate.metrics.multicalibration);
    alpha: the tolerance on a cell's mean residual; min_mass: the smallest cell, as a
    fraction of the fitting rows; n_score_bins: equal-width score bins; max_iter: the most
    patches; step: the fraction of the residual each patch applies; class_index: None
    (P(class 1) of (n,) scores, top-label of (n, k)) or a class (one-vs-rest).
    Fitted: columns_ (the stored codings), patches_ (list of {"segment": [[column, code],
    ...], "bin", "shift", "count", "residual"} in order), n_iter_, converged_, n_fit_,
    holdout_ (dict or None); fitted_scores_ (n_fit_,) the patched scores of the fitting
    rows and fit_rows_ (their indices) are kept in memory only, not saved.
    """

    json_format = FORMAT
    json_what = "multicalibration post-processor"

    def __init__(self, categorical=(), numerical=(), *, alpha: float = 0.02, min_mass: float = 0.02,
                 n_score_bins: int = 10, max_iter: int = 200, step: float = 1.0, max_depth: int = 3,
                 n_bins: int = 3, max_categories: int | None = 3, min_segment_size: int = 10,
                 max_segments: int | None = 1000, class_index: int | None = None):
        self.categorical = categorical
        self.numerical = numerical
        self.alpha = alpha
        self.min_mass = min_mass
        self.n_score_bins = n_score_bins
        self.max_iter = max_iter
        self.step = step
        self.max_depth = max_depth
        self.n_bins = n_bins
        self.max_categories = max_categories
        self.min_segment_size = min_segment_size
        self.max_segments = max_segments
        self.class_index = class_index

    # -------------------------------------------------------------- checks
    def _check_params(self):
        def number(name, lo, hi=math.inf, lo_open=False):
            v = getattr(self, name)
            bad = isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
            if bad or not math.isfinite(v) or v < lo or (lo_open and v == lo) or v > hi:
                rng = f"{'>' if lo_open else '>='} {lo:g}" + ("" if hi == math.inf else f" and <= {hi:g}")
                raise InputError(f"{name}: expected a number {rng}, got {v!r}")

        number("alpha", 0.0)
        number("min_mass", 0.0, 1.0, lo_open=True)
        number("step", 0.0, 1.0, lo_open=True)
        for name in ("n_score_bins", "max_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if name == "n_score_bins" else 0):
                raise InputError(f"{name}: expected a {'positive' if name == 'n_score_bins' else 'non-negative'} "
                                 f"integer, got {v!r}")
        if not list(self.categorical) + list(self.numerical):
            raise InputError("categorical / numerical: name at least one feature column to build segments from")

    def _metric(self, s, r, features) -> float:
        return multicalibration_error_from_scores(
            s, r, features, categorical=list(self.categorical), numerical=list(self.numerical),
            max_depth=self.max_depth, n_bins=self.n_bins, max_categories=self.max_categories,
            min_segment_size=self.min_segment_size, max_segments=self.max_segments)

    # -------------------------------------------------------------- fit
    def fit(self, scores, labels, features, *, validation_fraction: float | None = None, seed: int = 0):
        """Fit on scores (n,) or (n, k) probabilities, labels (n,) and features (a mapping of
        (n,) columns, or a pandas DataFrame). validation_fraction: hold out that fraction of
        the rows (chosen with ``seed``) for the over-fitting check. Returns self."""
        self._check_params()
        s_all, _ = _scores(scores, self.class_index)
        r_all = _outcomes(scores, labels, self.class_index)
        n = s_all.shape[0]
        names = list(self.categorical) + list(self.numerical)
        hold = None
        if validation_fraction is not None:
            f = validation_fraction
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1:
                raise InputError(f"validation_fraction: expected a number in (0, 1) or None, got {f!r}")
            perm = np.random.default_rng(seed).permutation(n)
            n_hold = int(round(f * n))
            if n_hold < self.min_segment_size or n - n_hold < 1:
                raise InputError(f"validation_fraction: {f} of {n} rows holds out {n_hold}, fewer than "
                                 f"min_segment_size ({self.min_segment_size}); use more rows or a larger fraction")
            hold, fit_rows = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
        else:
            fit_rows = np.arange(n)
        feats = _subset(features, names, fit_rows)
        s, r = s_all[fit_rows].copy(), r_all[fit_rows]
        m = s.shape[0]
        columns = segment_columns(feats, self.categorical, self.numerical, n=m, n_bins=self.n_bins,
                                  max_categories=self.max_categories)
        kinds = ["categorical"] * len(self.categorical) + ["numerical"] * len(self.numerical)
        specs = [_column_spec(c, kd) for c, kd in zip(columns, kinds)]
        index = {c.name: i for i, c in enumerate(columns)}
        segments = []
        for definition, rows in iter_segments(columns, m, max_depth=self.max_depth,
                                              min_segment_size=self.min_segment_size,
                                              max_segments=self.max_segments):
            pairs = [[index[name], columns[index[name]].values.index(value)] for name, value in definition.items()]
            segments.append((pairs, rows))
        patches, converged = self._iterate(s, r, segments, m)
        self.columns_ = specs
        self.patches_ = patches
        self.n_iter_ = len(patches)
        self.converged_ = converged
        self.n_fit_ = int(m)
        self.fitted_scores_ = s
        self.fit_rows_ = fit_rows
        self.holdout_ = None
        if not converged:
            warnings.warn(f"MulticalibrationPostprocessor: stopped after max_iter = {self.max_iter} patches with "
                          f"cells still off by more than alpha = {self.alpha}; raise max_iter or alpha",
                          CalibrationWarning, stacklevel=2)
        if hold is not None:
            fh = _subset(features, names, hold)
            self.holdout_ = self._report(s_all[hold], r_all[hold], fh)
            self._warn_if_worse(self.holdout_, "held-out")
        return self

    def _iterate(self, s, r, segments, m):
        """Patch s (m,) in place; returns (patches, converged)."""
        nb = int(self.n_score_bins)
        min_count = max(1, math.ceil(self.min_mass * m - 1e-9))
        patches = []
        for _ in range(int(self.max_iter) + 1):
            bins = _bins(s, nb)
            res = r - s
            best, best_gain = None, 0.0
            for j, (_pairs, rows) in enumerate(segments):
                b = bins[rows]
                cnt = np.bincount(b, minlength=nb)
                tot = np.bincount(b, weights=res[rows], minlength=nb)
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0)
                ok = (cnt >= min_count) & (np.abs(mean) > self.alpha)
                if not ok.any():
                    continue
                gain = np.where(ok, cnt * mean * mean, -1.0)
                v = int(np.argmax(gain))
                if gain[v] > best_gain:
                    best, best_gain = (j, v, float(mean[v]), int(cnt[v])), float(gain[v])
            if best is None:
                return patches, True
            if len(patches) == self.max_iter:
                return patches, False
            j, v, mean, cnt = best
            pairs, rows = segments[j]
            cell = rows[bins[rows] == v]
            shift = float(self.step * mean)
            s[cell] = np.clip(s[cell] + shift, 0.0, 1.0)
            patches.append({"segment": [list(p) for p in pairs], "bin": v, "shift": shift, "count": cnt,
                            "residual": mean})
        return patches, False  # pragma: no cover - the loop returns

    # -------------------------------------------------------------- predict
    def _membership(self, features, n):
        names = [c["name"] for c in self.columns_]
        feats = _subset(features, names, None)
        for name, col in feats.items():
            if col.ndim != 1 or col.shape[0] != n:
                raise InputError(f"features[{name!r}]: expected shape ({n},), one value per row, got {col.shape}")
        codes = [_code(spec, feats[spec["name"]]) for spec in self.columns_]
        cache: dict = {}

        def member(pairs) -> np.ndarray:
            key = tuple(map(tuple, pairs))
            if key not in cache:
                mask = np.ones(n, dtype=bool)
                for c, v in pairs:
                    mask &= codes[c] == v
                cache[key] = mask
            return cache[key]

        return member

    def predict(self, scores, features) -> np.ndarray:
        """(n,) float64 patched scores of new rows (the same kind of score as in fit)."""
        self._check_fitted()
        s, _ = _scores(scores, self.class_index)
        return self._patch_scores(s, features)

    def _patch_scores(self, s: np.ndarray, features) -> np.ndarray:
        """The patches applied in order to scores s (n,) (a copy)."""
        s = s.copy()
        member = self._membership(features, s.shape[0])
        nb = int(self.n_score_bins)
        for p in self.patches_:
            cell = member(p["segment"]) & (_bins(s, nb) == p["bin"])
            s[cell] = np.clip(s[cell] + p["shift"], 0.0, 1.0)
        return s

    def score(self, scores, labels, features) -> dict:
        """The multicalibration error of these rows before and after the patches: {"n",
        "mce_sigma_before", "mce_sigma_after", "mce_before", "mce_after"} (MCGrad's
        mce_sigma and mce; :mod:`calibrate.metrics.multicalibration`), with a warning when
        it got worse."""
        self._check_fitted()
        s, _ = _scores(scores, self.class_index)
        r = _outcomes(scores, labels, self.class_index)
        names = list(self.categorical) + list(self.numerical)
        out = self._report(s, r, _subset(features, names, None))
        self._warn_if_worse(out, "these")
        return out

    def _report(self, s, r, feats) -> dict:
        after = self._patch_scores(s, feats)
        before_m, after_m = self._metric(s, r, feats), self._metric(after, r, feats)
        return {"n": int(s.shape[0]), "mce_sigma_before": before_m.mce_sigma, "mce_sigma_after": after_m.mce_sigma,
                "mce_before": before_m.mce, "mce_after": after_m.mce}

    @staticmethod
    def _warn_if_worse(rep: dict, which: str):
        if rep["mce_sigma_after"] > rep["mce_sigma_before"]:
            warnings.warn(f"MulticalibrationPostprocessor: the multicalibration error on {which} {rep['n']} rows got "
                          f"worse ({rep['mce_sigma_before']:.3g} -> {rep['mce_sigma_after']:.3g} sigma): the patches "
                          "over-fit; raise alpha or min_mass, or use fewer segments", CalibrationWarning, stacklevel=3)

    # -------------------------------------------------------------- state
    def is_fitted(self) -> bool:
        return hasattr(self, "patches_")

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted()

    def _check_fitted(self):
        if not self.is_fitted():
            raise NotFittedError("MulticalibrationPostprocessor is not fitted yet: call fit(scores, labels, "
                                 "features) first")

    def summary(self) -> dict:
        self._check_fitted()
        out = {"patches": self.n_iter_, "converged": self.converged_}
        if self.holdout_ is not None:
            out.update({"held-out mce_sigma before": self.holdout_["mce_sigma_before"],
                        "held-out mce_sigma after": self.holdout_["mce_sigma_after"]})
        return out

    # -------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        self._check_fitted()
        params = self.get_params(deep=False)
        params["categorical"] = list(params["categorical"])
        params["numerical"] = list(params["numerical"])
        return self._envelope(_encode(params), {"columns_": self.columns_, "patches_": _encode(self.patches_), "n_iter_": self.n_iter_,
                          "converged_": self.converged_, "n_fit_": self.n_fit_,
                          "holdout_": None if self.holdout_ is None else _encode(self.holdout_)})

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibrator") -> MulticalibrationPostprocessor:
        """A fitted post-processor from a saved dict; every field checked first (InputError naming it)."""
        where = cls._open_saved(d, source)
        pos = Number(integer=True, ge=1)
        params = decode_fields({
            "categorical": ListOf(_Name()), "numerical": ListOf(_Name()), "alpha": Number(ge=0),
            "min_mass": Number(gt=0, le=1), "n_score_bins": pos, "max_iter": Number(integer=True, ge=0),
            "step": Number(gt=0, le=1), "max_depth": Number(integer=True, ge=0), "n_bins": pos,
            "max_categories": Number(integer=True, ge=1, nullable=True), "min_segment_size": pos,
            "max_segments": Number(integer=True, ge=1, nullable=True),
            "class_index": Number(integer=True, ge=0, nullable=True)}, d["params"], where.key("params"), {})
        ws = where.key("state")
        patch = Record({"segment": ListOf(_Pair()), "bin": Number(integer=True, ge=0, lt=params["n_score_bins"]),
                        "shift": Number(ge=-1, le=1), "count": Number(integer=True, ge=1),
                        "residual": Number(ge=-1, le=1)})
        report = Record({"n": Number(integer=True, ge=1), "mce_sigma_before": Number(ge=0, finite=False),
                         "mce_sigma_after": Number(ge=0, finite=False), "mce_before": Number(ge=0, finite=False),
                         "mce_after": Number(ge=0, finite=False)})
        state = decode_fields({"columns_": ListOf(_ColumnSpec()), "patches_": ListOf(patch),
                               "n_iter_": Number(integer=True, ge=0), "converged_": Bool(),
                               "n_fit_": Number(integer=True, ge=1), "holdout_": _OrNone(report)},
                              d["state"], ws, {})
        names = params["categorical"] + params["numerical"]
        if [c["name"] for c in state["columns_"]] != names:
            raise InputError(f"{ws.key('columns_')}: expected the columns {names} (categorical, then numerical)")
        for i, c in enumerate(state["columns_"]):
            if c["kind"] != ("categorical" if i < len(params["categorical"]) else "numerical"):
                raise InputError(f"{ws.key('columns_').index(i).key('kind')}: expected "
                                 f"{'categorical' if i < len(params['categorical']) else 'numerical'}")
        sizes = [len(c["values"]) + (c["pooled"] or c["nan"]) for c in state["columns_"]]
        for i, p in enumerate(state["patches_"]):
            for c, v in p["segment"]:
                if not (0 <= c < len(sizes) and 0 <= v < sizes[c]):
                    raise InputError(f"{ws.key('patches_').index(i).key('segment')}: the pair [{c}, {v}] names no "
                                     "column value of columns_")
        if state["n_iter_"] != len(state["patches_"]):
            raise InputError(f"{ws.key('n_iter_')}: expected {len(state['patches_'])} (one per patch)")
        obj = cls(**params)
        for key, value in state.items():
            setattr(obj, key, value)
        return obj


# ----------------------------------------------------------------------------- file fields
class _Name(Field):
    def decode(self, v, where, dims):
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            self.fail(where, repr(v), "a column name (a string or an integer)")
        return v


class _Pair(Field):
    def decode(self, v, where, dims):
        if not isinstance(v, list) or len(v) != 2 or any(isinstance(x, bool) or not isinstance(x, int) or x < 0
                                                         for x in v):
            self.fail(where, repr(v), "a pair [column index, value code] of integers >= 0")
        return v


class _OrNone(Field):
    def __init__(self, inner: Field):
        self.inner = inner

    def decode(self, v, where, dims):
        return None if v is None else self.inner.decode(v, where, dims)


class _ColumnSpec(Field):
    """One stored column coding (see _column_spec)."""

    def decode(self, v, where, dims):
        fields = {"name": _Name(), "kind": _Kind(), "values": _Scalars(), "pooled": Bool(), "nan": Bool(),
                  "intervals": Bool()}
        if not isinstance(v, dict):
            self.fail(where, type(v).__name__, "an object")
        spec = decode_fields(fields, v, where, {})
        vals = spec["values"]
        wv = where.key("values")
        if spec["kind"] == "numerical":
            if spec["pooled"]:
                self.fail(where.key("pooled"), "true", "false for a numerical column")
            if spec["intervals"]:
                ok = vals and all(isinstance(p, list) and len(p) == 2 and all(_finite(x) for x in p) for p in vals)
                ok = ok and all(a < b for a, b in vals) and all(vals[i][1] == vals[i + 1][0]
                                                                for i in range(len(vals) - 1))
                if not ok:
                    self.fail(wv, "values", "adjoining intervals [[a, b], [b, c], ...] of finite numbers")
            elif not all(_finite(x) for x in vals) or any(b <= a for a, b in zip(vals, vals[1:])):
                self.fail(wv, "values", "increasing finite numbers")
        elif spec["nan"] or spec["intervals"]:
            self.fail(where, "nan or intervals true", "both false for a categorical column")
        elif any(isinstance(x, list) for x in vals):
            self.fail(wv, "a list", "JSON scalars (strings, numbers, booleans, null)")
        return spec


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class _Kind(Field):
    def decode(self, v, where, dims):
        if v not in ("categorical", "numerical"):
            self.fail(where, repr(v), "'categorical' or 'numerical'")
        return v


class _Scalars(Field):
    def decode(self, v, where, dims):
        if not isinstance(v, list):
            self.fail(where, type(v).__name__, "a list of values")
        for i, x in enumerate(v):
            if not (x is None or isinstance(x, (str, int, float, bool, list))):
                self.fail(where.index(i), type(x).__name__, "a string, number, boolean or null")
        return v
