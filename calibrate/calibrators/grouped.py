"""Per-group recalibration with shrinkage toward the global fit (partial pooling).

    cal = GroupedCalibrator("temperature").fit(val_logits, val_labels, val_groups)
    probs = cal.predict_proba(test_logits, test_groups)
    cal.save("grouped.json");  cal = GroupedCalibrator.load("grouped.json")

A model calibrated on average can be off for one hospital, language or subject; a
calibrator fitted on each group alone is noisy for small groups. The fit here is the
empirical-Bayes compromise (partial pooling: Efron & Morris 1975, "Data analysis using
Stein's estimator and its generalizations", JASA; Gelman & Hill 2007, ch. 12): each group's
fit is pulled toward the global one, the more the fewer rows the group has, with the
strength of the pull chosen by K-fold cross-validation.

Temperature (``base="temperature"`` or a ``TemperatureScaling`` with objective "nll"): the
global temperature T_0 is the NLL optimum on all rows; group g's b_g = log T_g minimises the
penalised NLL

    sum_{i in g} -log softmax(z_i / T_g)[y_i]  +  lambda (b_g - log T_0)^2,

a Gaussian prior on log T_g centred on the global fit, of precision 2 lambda (the maximum a
posteriori estimate). lambda = 0 gives separate per-group fits, lambda = inf the global
temperature for every group; in between, b_g moves from log T_0 toward the group's own
optimum as n_g grows (the NLL sum grows like n_g, the penalty does not). The per-group
NLL is unimodal in log T (convex in 1/T), so the optimum lies between log T_0 and the
group's own optimum and is found there by safeguarded Newton on the derivative (all groups
at once: one pass over the rows per iteration). A group's own optimum is searched within the
base calibrator's ``bounds``, or T_0 / 1000 .. 1000 T_0 when it has none; a group whose NLL
keeps falling at an end (every label a top logit: T -> 0) gets that end, with a warning
when shrinkage is 0.

Any other calibrator (a method name or a ``Calibrator`` instance): the global calibrator
and one per group are fitted; a row of group g gets the mixture

    p = w_g p_g + (1 - w_g) p_0,   w_g = n_g / (n_g + tau),

of the group's and the global calibrated probabilities (the precision weight of the
normal-normal empirical-Bayes estimate, tau = the within-group variance over the
between-group variance, in rows). tau = 0 gives separate fits, tau = inf the global fit.
A group whose own fit fails (too few rows, one class) gets w_g = 0, with a warning.

``shrinkage="cv"`` (default) chooses lambda (or tau) from ``grid`` by ``cv``-fold
cross-validation: rows are split into folds within each group (so every group is
represented in every fold it can be), everything above is refitted on the other folds, and
the grid value with the lowest held-out mean NLL over all rows wins (ties: the larger
shrinkage). A number fixes it (0 and inf allowed).

Groups not seen in ``fit`` fall back to the global calibrator at predict time (with a
CalibrationWarning giving how many rows). Labels are encoded as for every calibrator
(``classes_``; :func:`calibrate.calibrators.base.encode_labels`).

The JSON file holds the parameters, the group values, the global calibrator and each group's
temperature (or calibrator file and weight), checked field by field on load; never pickle.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, clone

from calibrate._core.blocks import BLOCK_BYTES, row_blocks
from calibrate._core.validation import CalibrationWarning, InputError, as_logits, to_numpy
from calibrate.calibrators._schema import (
    Array,
    ClassLabels,
    Field,
    ListOf,
    Number,
    decode_fields,
)
from calibrate.calibrators.base import (
    _REGISTRY,
    MAX_CLASSES,
    Calibrator,
    JsonFileMixin,
    NotFittedError,
    _encode,
    encode_labels,
    log_softmax64,
)
from calibrate.calibrators.scaling import TemperatureScaling
from calibrate.calibrators.temperature_solver import fit_temperature_nll

FORMAT = "calibrate.grouped_calibrator"
# lambda (temperature) or tau (mixture): 0 (separate fits), 10^-1 .. 10^5 in half decades, inf (global)
DEFAULT_GRID = (0.0, *np.round(10.0 ** np.arange(-1.0, 5.01, 0.5), 12).tolist(), math.inf)
# a group's own temperature is searched within T_0 / 1000 .. 1000 T_0 when the base calibrator
# has no bounds (a group with no finite optimum, e.g. every label a top logit, gets an end)
_LOG_T_SPAN = math.log(1000.0)


def _check_groups(groups, n: int) -> np.ndarray:
    """(n,) array of group values (any sortable kind)."""
    arr = to_numpy(groups, "groups") if hasattr(groups, "detach") else np.asarray(groups)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"groups: expected shape ({n},), one group value per row, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"groups: a non-finite group value at row {int(np.argmax(~np.isfinite(arr)))}; "
                         "give every row a group")
    if arr.dtype.kind not in "biufUS":
        try:
            arr = np.asarray(arr.tolist())
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.dtype.kind not in "biufUS" or arr.ndim != 1:
            raise InputError("groups: expected integers, floats, booleans or strings (one type), e.g. a "
                             "column of group names")
    if arr.dtype.kind == "S":
        arr = arr.astype(str)
    return arr


def _rows_by_group(codes: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """[rows (m_g,) increasing of each group code 0..n_groups-1]."""
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=n_groups))])
    return [order[starts[g]:starts[g + 1]] for g in range(n_groups)]


def _fold_ids(codes: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """(n,) fold of each row: rows shuffled within each group, dealt to folds in turn."""
    perm = np.random.default_rng(seed).permutation(codes.shape[0])
    order = np.lexsort((perm, codes))
    sorted_codes = codes[order]
    first = np.searchsorted(sorted_codes, sorted_codes, side="left")
    rank = np.arange(codes.shape[0]) - first
    folds = np.empty(codes.shape[0], dtype=np.int64)
    folds[order] = (rank + sorted_codes) % n_folds
    return folds


# ----------------------------------------------------------------------------- temperature
def _group_sums(z, y, codes, log_t, n_groups: int, rows=None):
    """Per-group sums of the row NLL terms at T_g = exp(log_t[g]), in float64:
    (f (G,), f' (G,), f'' (G,)), f = -log softmax(z / T)[y], derivatives in a = 1/T
    (f' = E_p[zs] - zs_y, f'' = Var_p(zs) >= 0, zs = z - max z; as nll_derivative_sums).
    rows: the rows to sum (default all), read in blocks."""
    idx = np.arange(z.shape[0]) if rows is None else rows
    out = np.zeros((3, n_groups))
    for s in row_blocks(idx.size, z.shape[1], 8, BLOCK_BYTES):
        r = idx[s]
        c = codes[r]
        zs = z[r] - z[r].max(axis=1, keepdims=True)
        zy = zs[np.arange(r.size), y[r]]
        a = np.exp(-log_t[c])
        e = np.exp(np.maximum(a[:, None] * zs, -700.0))
        s0 = e.sum(axis=1)
        m1 = (e * zs).sum(axis=1) / s0
        m2 = (e * zs * zs).sum(axis=1) / s0
        for j, term in enumerate((np.log(s0) - a * zy, m1 - zy, np.maximum(m2 - m1 * m1, 0.0))):
            out[j] += np.bincount(c, weights=term, minlength=n_groups)
    return out


def _bracketed_root(z, y, codes, n_groups, b0, lam, lo, hi, active, max_iter=200) -> np.ndarray:
    """(G,) the root of G'(b) = -a S'(a) + 2 lam (b - b0) (a = e^{-b}, S the group's NLL sum)
    inside (lo, hi) for the ``active`` groups, given G' < 0 at lo and > 0 at hi (the midpoint
    elsewhere): safeguarded Newton (a step that leaves the bracket becomes a bisection), all
    groups in one pass over their rows per iteration, until the step is below 1e-14 (relative)."""
    lo, hi, active = lo.copy(), hi.copy(), active.copy()
    x = 0.5 * (lo + hi)
    for _ in range(max_iter):
        if not active.any():
            break
        rows = np.flatnonzero(active[codes])
        _, ga, ha = _group_sums(z, y, codes, x, n_groups, rows)
        a = np.exp(-x)
        gp = -a * ga + 2.0 * lam * (x - b0)
        gpp = a * a * ha + a * ga + 2.0 * lam
        lo = np.where(active & (gp < 0), x, lo)
        hi = np.where(active & (gp > 0), x, hi)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = np.where(gpp > 0, gp / gpp, np.inf)
        newton = x - step
        tol = 1e-14 * np.maximum(1.0, np.abs(x))
        small = np.abs(step) <= tol  # converged: the last Newton step, within the bracket
        ok = small | ((newton > lo) & (newton < hi))
        nxt = np.where(gp == 0, x, np.where(ok, np.clip(newton, lo, hi), 0.5 * (lo + hi)))
        finished = active & (small | (gp == 0) | (hi - lo <= tol))
        x = np.where(active, nxt, x)
        active &= ~finished
    return x


def _slope(z, y, codes, n_groups, b) -> np.ndarray:
    """(G,) dS/db of each group's NLL sum at log T = b (G,): -a sum f' with a = e^{-b}."""
    return -np.exp(-b) * _group_sums(z, y, codes, b, n_groups)[1]


def _own_log_t(z, y, codes, n_groups: int, b0: float, bounds) -> np.ndarray:
    """(G,) log of each group's own NLL-optimal temperature: within ``bounds`` (low, high), or
    within T_0 e^{-span} .. T_0 e^{span} when None; a group whose NLL still falls at an end
    of that range gets the end; a group with no rows gets b0."""
    lo_b, hi_b = (math.log(bounds[0]), math.log(bounds[1])) if bounds is not None else (
        b0 - _LOG_T_SPAN, b0 + _LOG_T_SPAN)
    lo, hi = np.full(n_groups, lo_b), np.full(n_groups, hi_b)
    present = np.bincount(codes, minlength=n_groups) > 0
    at_lo = _slope(z, y, codes, n_groups, lo) >= 0
    at_hi = ~at_lo & (_slope(z, y, codes, n_groups, hi) <= 0)
    x = _bracketed_root(z, y, codes, n_groups, b0, 0.0, lo, hi, present & ~at_lo & ~at_hi)
    return np.where(~present, b0, np.where(at_lo, lo, np.where(at_hi, hi, x)))


def _penalised_log_t(z, y, codes, n_groups: int, b0: float, b_own: np.ndarray, lam: float) -> np.ndarray:
    """(G,) b_g = argmin_b sum_{i in g} NLL(z_i / e^b) + lam (b - b0)^2, for every group at once.

    The group's NLL is unimodal in b (convex in a = e^{-b}), so the minimiser lies between b0
    and its own optimum b_own (:func:`_bracketed_root` finds it there).
    """
    if lam == math.inf:
        return np.full(n_groups, b0)
    if lam == 0.0:
        return b_own.copy()
    side = np.sign(b_own - b0)
    stay = side * _slope(z, y, codes, n_groups, np.full(n_groups, b0)) >= 0  # equal, or no pull away from b0
    g1 = _slope(z, y, codes, n_groups, b_own) + 2.0 * lam * (b_own - b0)
    # g1 of the wrong sign: the group's optimum lies at a bound and the penalty cannot pull it back
    active = ~stay & (side * g1 > 0)
    lo, hi = np.minimum(b0, b_own), np.maximum(b0, b_own)  # G' < 0 at lo, > 0 at hi
    x = _bracketed_root(z, y, codes, n_groups, b0, lam, lo, hi, active)
    return np.where(stay, b0, np.where(active, x, b_own))


def _nll_total(z, y, codes, log_t, n_groups: int) -> float:
    """sum_i -log softmax(z_i / T_{g_i})[y_i]."""
    return float(_group_sums(z, y, codes, log_t, n_groups)[0].sum())


# ----------------------------------------------------------------------------- the estimator
class GroupedCalibrator(JsonFileMixin, BaseEstimator):
    """A calibrator per group, shrunk toward the global fit (see the module docstring).

    base: "temperature" (default), any ``calibrate fit --method`` name, or a
    :class:`~calibrate.calibrators.base.Calibrator` instance (cloned for every fit).
    shrinkage: "cv" (chosen from ``grid`` by ``cv``-fold cross-validation) or a number
    >= 0 (lambda for temperature, tau in rows otherwise; inf = the global fit).
    grid: the candidate values (default :data:`DEFAULT_GRID`: 0, 10^-1 .. 10^5 by half
    decades, inf). seed: the fold assignment.
    Fitted: groups_ (G,) sorted group values, group_sizes_ (G,), mode_ ("temperature" or
    "mixture"), shrinkage_, global_ (the fitted global calibrator), temperatures_ (G,)
    or calibrators_ (G, fitted or None) and weights_ (G,) w_g; with "cv", grid_ and
    cv_nll_ (held-out mean NLL per grid value); n_classes_, classes_.
    """

    json_format = FORMAT
    json_what = "grouped calibrator"

    def __init__(self, base="temperature", shrinkage="cv", cv: int = 5, grid=None, seed: int = 0):
        self.base = base
        self.shrinkage = shrinkage
        self.cv = cv
        self.grid = grid
        self.seed = seed

    # -------------------------------------------------------------- configuration
    def _base_calibrator(self) -> Calibrator:
        if isinstance(self.base, Calibrator):
            return clone(self.base)
        if isinstance(self.base, str) and self.base in _REGISTRY:
            return _REGISTRY[self.base]()
        raise InputError(f"base: expected a method name ({', '.join(_REGISTRY)}) or a Calibrator instance, "
                         f"got {self.base!r}")

    def _is_temperature(self, cal: Calibrator) -> bool:
        return type(cal) is TemperatureScaling and cal.objective == "nll"

    def _grid(self) -> np.ndarray:
        grid = DEFAULT_GRID if self.grid is None else self.grid
        try:
            g = np.asarray(grid, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"grid: expected a list of numbers >= 0, got {grid!r}") from None
        if g.size == 0 or np.isnan(g).any() or (g < 0).any():
            raise InputError(f"grid: expected a non-empty list of numbers >= 0 (inf allowed), got {grid!r}")
        return np.unique(g)

    def _fixed_shrinkage(self):
        """None for "cv", else the fixed value."""
        if isinstance(self.shrinkage, str) and self.shrinkage == "cv":
            return None
        ok = isinstance(self.shrinkage, (int, float, np.integer, np.floating)) and not isinstance(self.shrinkage, bool)
        if not ok or math.isnan(float(self.shrinkage)) or float(self.shrinkage) < 0:
            raise InputError(f"shrinkage: expected \"cv\" or a number >= 0 (inf: the global fit), got "
                             f"{self.shrinkage!r}")
        return float(self.shrinkage)

    # -------------------------------------------------------------- fit
    def fit(self, logits, labels, groups, *, kind: str | None = None):
        """Fit on logits (n, k), labels (n,) and groups (n,) (any sortable values). Returns self.

        kind: "logits", "probs" or "log_probs", as for every calibrator.
        """
        z = as_logits(logits, "logits", kind).astype(np.float64, copy=False)
        n, k = z.shape
        if k < 2:
            raise InputError(f"logits: a calibrator needs at least 2 classes, got shape {z.shape}")
        classes, y = encode_labels(labels, n, k)
        g_arr = _check_groups(groups, n)
        values, codes = np.unique(g_arr, return_inverse=True)
        codes = codes.reshape(-1).astype(np.int64)
        base = self._base_calibrator()
        fixed = self._fixed_shrinkage()
        temperature = self._is_temperature(base)
        grid = cv_nll = None
        if fixed is None:
            if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
                raise InputError(f"cv: expected an integer >= 2 (the number of folds), got {self.cv!r}")
            if n < 2 * self.cv:
                raise InputError(f"cv: {self.cv}-fold cross-validation needs at least {2 * self.cv} rows, "
                                 f"got {n}; give a fixed shrinkage or fewer folds")
            grid = self._grid()
            cv_nll = self._cv_scores(z, y, codes, len(values), base, grid, temperature)
            best = cv_nll.min()
            # ties (within rounding) go to the larger shrinkage
            chosen = float(grid[np.flatnonzero(cv_nll <= best + 1e-12 * max(1.0, abs(best)))[-1]])
        else:
            chosen = fixed
        rows = _rows_by_group(codes, len(values))
        state = {"n_classes_": int(k), "classes_": classes, "groups_": values,
                 "group_sizes_": np.array([r.size for r in rows], dtype=np.int64),
                 "mode_": "temperature" if temperature else "mixture", "shrinkage_": chosen,
                 "grid_": grid, "cv_nll_": cv_nll}
        global_cal = clone(base).fit(z, y, kind="logits")
        state["global_"] = global_cal
        if temperature:
            b0 = math.log(global_cal.temperature_)
            b_own = _own_log_t(z, y, codes, len(values), b0, base.bounds)
            lo, hi = np.log(base.bounds) if base.bounds is not None else (b0 - _LOG_T_SPAN, b0 + _LOG_T_SPAN)
            at_bound = int(np.count_nonzero((b_own <= lo) | (b_own >= hi))) if chosen == 0.0 else 0
            b = _penalised_log_t(z, y, codes, len(values), b0, b_own, chosen)
            temps = np.where(b == b0, global_cal.temperature_, np.exp(b))  # exactly T_0 where pooled fully
            if at_bound:
                warnings.warn(f"GroupedCalibrator: {at_bound} group(s) have no NLL optimum inside the temperature "
                              "range and sit at its edge (shrinkage 0: separate fits); use shrinkage > 0",
                              CalibrationWarning, stacklevel=2)
            state["temperatures_"] = temps
        else:
            cals, failed = [], 0
            for r in rows:
                cal = _fit_or_none(base, z[r], y[r])
                failed += cal is None
                cals.append(cal)
            if failed:
                warnings.warn(f"GroupedCalibrator: the {type(base).__name__} fit failed on {failed} group(s) (too few "
                              "rows or classes); those groups use the global calibrator", CalibrationWarning,
                              stacklevel=2)
            sizes = state["group_sizes_"].astype(np.float64)
            weights = _weights(sizes, chosen)
            weights[[c is None for c in cals]] = 0.0
            state["calibrators_"] = cals
            state["weights_"] = weights
        for key, value in state.items():
            setattr(self, key, value)
        return self

    def _cv_scores(self, z, y, codes, n_groups, base, grid, temperature) -> np.ndarray:
        """(len(grid),) held-out mean NLL of each grid value over ``cv`` folds."""
        folds = _fold_ids(codes, self.cv, self.seed)
        total = np.zeros(grid.size)
        for f in range(self.cv):
            train, test = folds != f, folds == f
            if not test.any():
                continue
            zt, yt, ct = z[train], y[train], codes[train]
            zh, yh, ch = z[test], y[test], codes[test]
            train_rows = _rows_by_group(ct, n_groups)
            test_rows = _rows_by_group(ch, n_groups)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if temperature:
                    total += self._cv_fold_temperature(zt, yt, zh, yh, train_rows, test_rows, base, grid)
                else:
                    total += self._cv_fold_mixture(zt, yt, zh, yh, train_rows, test_rows, base, grid)
        return total / z.shape[0]

    @staticmethod
    def _cv_fold_temperature(zt, yt, zh, yh, train_rows, test_rows, base, grid) -> np.ndarray:
        t0, _ = fit_temperature_nll(zt, yt, base.bounds)
        b0 = math.log(t0)
        n_groups = len(train_rows)
        ct = np.empty(zt.shape[0], dtype=np.int64)
        ch = np.empty(zh.shape[0], dtype=np.int64)
        for g, (tr, te) in enumerate(zip(train_rows, test_rows)):
            ct[tr], ch[te] = g, g
        seen = np.array([tr.size > 0 for tr in train_rows])
        b_own = _own_log_t(zt, yt, ct, n_groups, b0, base.bounds)
        out = np.zeros(grid.size)
        for j, lam in enumerate(grid):
            b = np.where(seen, _penalised_log_t(zt, yt, ct, n_groups, b0, b_own, float(lam)), b0)
            out[j] = _nll_total(zh, yh, ch, b, n_groups)
        return out

    @staticmethod
    def _cv_fold_mixture(zt, yt, zh, yh, train_rows, test_rows, base, grid) -> np.ndarray:
        glob = clone(base).fit(zt, yt, kind="logits")
        out = np.zeros(grid.size)
        for tr, te in zip(train_rows, test_rows):
            if te.size == 0:
                continue
            lp0 = glob.predict_log_proba(zh[te], kind="logits")[np.arange(te.size), yh[te]]
            cal = _fit_or_none(base, zt[tr], yt[tr]) if tr.size else None
            if cal is None:
                out -= lp0.sum()
                continue
            lpg = cal.predict_log_proba(zh[te], kind="logits")[np.arange(te.size), yh[te]]
            w = _weights(np.full(grid.size, float(tr.size)), grid)
            for j in range(grid.size):
                out[j] -= _mix(lpg, lp0, w[j]).sum()
        return out

    # -------------------------------------------------------------- predict
    def _group_codes(self, groups, n) -> np.ndarray:
        """(n,) index into groups_ of each row, -1 for a group not seen in fit."""
        arr = _check_groups(groups, n)
        vals = self.groups_
        try:
            idx = np.searchsorted(vals, arr)
            hit = idx < vals.size
            hit[hit] = vals[idx[hit]] == arr[hit]
        except (TypeError, ValueError):
            raise InputError(f"groups: values of dtype {arr.dtype} cannot be matched to the fitted groups "
                             f"(dtype {vals.dtype})") from None
        return np.where(hit, idx, -1)

    def predict_log_proba(self, logits, groups, *, kind: str | None = None) -> np.ndarray:
        """(n, k) float64 calibrated log-probabilities; rows of unseen groups get the global fit."""
        self._check_fitted()
        z = as_logits(logits, "logits", kind).astype(np.float64, copy=False)
        if z.shape[1] != self.n_classes_:
            raise InputError(f"logits: expected {self.n_classes_} columns (this calibrator was fitted on "
                             f"{self.n_classes_} classes), got shape {z.shape}")
        codes = self._group_codes(groups, z.shape[0])
        unseen = int(np.count_nonzero(codes < 0))
        if unseen:
            warnings.warn(f"GroupedCalibrator: {unseen} of {z.shape[0]} rows belong to groups not seen in fit; "
                          "they get the global calibrator", CalibrationWarning, stacklevel=2)
        out = self.global_.predict_log_proba(z, kind="logits")
        seen = codes >= 0
        rows = _rows_by_group(codes[seen], self.groups_.size)
        index = np.flatnonzero(seen)
        for g, r in enumerate(rows):
            if r.size == 0:
                continue
            r = index[r]
            if self.mode_ == "temperature":
                out[r] = log_softmax64(z[r] / self.temperatures_[g])
            elif self.calibrators_[g] is not None and self.weights_[g] > 0:
                out[r] = _mix(self.calibrators_[g].predict_log_proba(z[r], kind="logits"), out[r],
                              float(self.weights_[g]))
        return out

    def predict_proba(self, logits, groups, *, kind: str | None = None) -> np.ndarray:
        """(n, k) float64 calibrated probabilities; each row sums to 1."""
        return np.exp(self.predict_log_proba(logits, groups, kind=kind))

    def predict(self, logits, groups, *, kind: str | None = None) -> np.ndarray:
        """(n,) the most probable class of each row, as a label from ``classes_``."""
        idx = self.predict_log_proba(logits, groups, kind=kind).argmax(axis=1)
        return np.asarray(self.classes_)[idx]

    # -------------------------------------------------------------- state
    def is_fitted(self) -> bool:
        return hasattr(self, "global_")

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted()

    def _check_fitted(self):
        if not self.is_fitted():
            raise NotFittedError("GroupedCalibrator is not fitted yet: call fit(logits, labels, groups) first")

    def summary(self) -> dict:
        """The chosen shrinkage, the number of groups and the spread of the group fits."""
        self._check_fitted()
        out = {"shrinkage": self.shrinkage_, "groups": int(self.groups_.size)}
        if self.mode_ == "temperature":
            out.update({"global T": float(self.global_.temperature_), "min T_g": float(self.temperatures_.min()),
                        "max T_g": float(self.temperatures_.max())})
        else:
            out.update({"mean w_g": float(self.weights_.mean())})
        return out

    # -------------------------------------------------------------- JSON
    def _params_dict(self) -> dict:
        base = self.base
        if isinstance(base, Calibrator):
            name, params = base.name, _encode(base.get_params(deep=False))
        else:
            name, params = base, None
        shrink = self.shrinkage if isinstance(self.shrinkage, str) else float(self.shrinkage)
        return {"base": name, "base_params": params, "shrinkage": _encode(shrink), "cv": int(self.cv),
                "grid": None if self.grid is None else _numbers(self.grid),
                "seed": int(self.seed)}

    def to_dict(self) -> dict:
        self._check_fitted()
        state = {"n_classes_": self.n_classes_, "classes_": _encode(self.classes_),
                 "groups_": _encode(self.groups_), "group_sizes_": _encode(self.group_sizes_),
                 "mode_": self.mode_, "shrinkage_": _encode(self.shrinkage_),
                 "grid_": None if self.grid_ is None else _numbers(self.grid_),
                 "cv_nll_": None if self.cv_nll_ is None else _numbers(self.cv_nll_),
                 "global_": self.global_.to_dict()}
        if self.mode_ == "temperature":
            state["temperatures_"] = _encode(self.temperatures_)
        else:
            state["calibrators_"] = [None if c is None else c.to_dict() for c in self.calibrators_]
            state["weights_"] = _encode(self.weights_)
        return self._envelope(self._params_dict(), state)

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibrator") -> GroupedCalibrator:
        """A fitted GroupedCalibrator from a saved dict; every field checked first (InputError naming it)."""
        where = cls._open_saved(d, source)
        p = decode_fields({"base": _MethodName(), "base_params": _Object(), "shrinkage": _Shrinkage(),
                           "cv": Number(integer=True, ge=2), "grid": _NumberList(ge=0),
                           "seed": Number(integer=True, ge=0)}, d["params"], where.key("params"), {})
        klass = _REGISTRY[p["base"]]
        if p["base_params"] is None:
            base = p["base"]
        else:
            schema = klass.param_schema or {}
            sub = decode_fields(schema, p["base_params"], where.key("params").key("base_params"), {})
            base = klass(**sub)
        ws = where.key("state")
        raw = d["state"]
        k = Number(integer=True, ge=2, le=MAX_CLASSES).decode(raw.get("n_classes_"), ws.key("n_classes_"), {})
        groups = ClassLabels().decode(raw.get("groups_"), ws.key("groups_"), {})
        if groups.size == 0:
            raise InputError(f"{ws.key('groups_')}: expected at least one group, got none")
        mode = raw.get("mode_")
        nested = _Nested()
        schema = {"n_classes_": Number(integer=True, ge=2, le=MAX_CLASSES), "classes_": ClassLabels(),
                  "groups_": _Skip(), "group_sizes_": Array(("G",), dtype="int64", ge=1),
                  "mode_": _Mode(), "shrinkage_": Number(ge=0, finite=False),
                  "grid_": _NumberList(ge=0), "cv_nll_": _NumberList(), "global_": nested}
        if mode == "temperature":
            schema["temperatures_"] = Array(("G",), gt=0)
        else:
            schema["calibrators_"] = ListOf(_Nested(nullable=True), length="G")
            schema["weights_"] = Array(("G",), ge=0, le=1)
        state = decode_fields(schema, raw, ws, {"k": k, "G": groups.size})
        state["groups_"] = groups
        if (state["grid_"] is None) != (state["cv_nll_"] is None) or (
                state["grid_"] is not None and state["grid_"].size != state["cv_nll_"].size):
            raise InputError(f"{ws.key('cv_nll_')}: expected one value per grid_ value (both null without cv)")
        if mode != "temperature":
            bad = [i for i, c in enumerate(state["calibrators_"]) if c is None and state["weights_"][i] != 0]
            if bad:
                raise InputError(f"{ws.key('weights_').index(bad[0])}: expected 0 for a group without a calibrator "
                                 "(calibrators_ is null there)")
        cals = [state["global_"]] + [c for c in state.get("calibrators_", []) if c is not None]
        for i, cal in enumerate(cals):
            name = "global_" if i == 0 else "calibrators_"
            if cal.n_classes_ != k or type(cal) is not klass:
                raise InputError(f"{ws.key(name)}: expected a {klass.__name__} on {k} classes (the base "
                                 f"calibrator), got {type(cal).__name__} on {cal.n_classes_}")
        if mode == "temperature" and not (klass is TemperatureScaling and state["global_"].objective == "nll"):
            raise InputError(f"{ws.key('mode_')}: 'temperature' needs an NLL TemperatureScaling base")
        obj = cls(base=base, shrinkage=p["shrinkage"], cv=p["cv"],
                  grid=None if p["grid"] is None else [float(x) for x in p["grid"]], seed=p["seed"])
        for key, value in state.items():
            setattr(obj, key, value)
        return obj


def _weights(sizes: np.ndarray, tau) -> np.ndarray:
    """w = n / (n + tau): 1 at tau = 0, 0 at tau = inf (elementwise over sizes and tau)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    tau = np.broadcast_to(np.asarray(tau, dtype=np.float64), sizes.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = sizes / (sizes + tau)
    return np.where(np.isinf(tau), 0.0, np.where(tau == 0, 1.0, w))


def _mix(lp_group: np.ndarray, lp_global: np.ndarray, w: float) -> np.ndarray:
    """log(w exp(lp_group) + (1 - w) exp(lp_global)), exactly lp_group at w = 1 and lp_global at w = 0."""
    if w >= 1.0:
        return lp_group
    if w <= 0.0:
        return lp_global
    return np.logaddexp(math.log(w) + lp_group, math.log1p(-w) + lp_global)


def _fit_or_none(base: Calibrator, z, y):
    """A clone of base fitted on (z, y), or None when the fit fails on these rows."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return clone(base).fit(z, y, kind="logits")
    except (InputError, ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError):
        return None


# ----------------------------------------------------------------------------- file fields
class _MethodName(Field):
    def decode(self, v, where, dims):
        if not isinstance(v, str) or v not in _REGISTRY:
            self.fail(where, repr(v), "one of " + ", ".join(_REGISTRY))
        return v


class _Object(Field):
    """null or a JSON object (checked later against the base calibrator's schema)."""

    def decode(self, v, where, dims):
        if v is not None and not isinstance(v, dict):
            self.fail(where, type(v).__name__, "null or an object of hyperparameters")
        return v


class _Shrinkage(Field):
    def decode(self, v, where, dims):
        if v == "cv":
            return v
        return Number(ge=0, finite=False).decode(v, where, dims)


class _Mode(Field):
    def decode(self, v, where, dims):
        if v not in ("temperature", "mixture"):
            self.fail(where, repr(v), "'temperature' or 'mixture'")
        return v


class _Skip(Field):
    def decode(self, v, where, dims):
        return v


class _Nested(Field):
    """A nested calibrator file (calibrate.calibrators.base format), checked by its own schema."""

    def __init__(self, nullable=False):
        self.nullable = nullable

    def decode(self, v, where, dims):
        if v is None and self.nullable:
            return None
        return Calibrator.from_dict(v, str(where))


class _NumberList(Field):
    """null, or a non-empty list of numbers (inf stored as {"__float__": "inf"}), decoded as (m,) float64."""

    def __init__(self, ge=None):
        self.item = Number(ge=ge, finite=False)

    def decode(self, v, where, dims):
        if v is None:
            return None
        if not isinstance(v, list) or not v:
            self.fail(where, type(v).__name__, "null or a non-empty list of numbers")
        return np.array([self.item.decode(x, where.index(i), dims) for i, x in enumerate(v)], dtype=np.float64)


def _numbers(values) -> list:
    """A list of floats in the file encoding (inf as {"__float__": "inf"})."""
    return [_encode(float(x)) for x in np.asarray(values, dtype=np.float64).reshape(-1)]

