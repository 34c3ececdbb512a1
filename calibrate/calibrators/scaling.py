"""Scaling calibrators: temperature, vector and matrix scaling (Guo et al. 2017), Platt.

All are fitted by minimising the validation negative log-likelihood in float64.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from calibrate._core import dispatch as _dispatch
from calibrate._core.blocks import BLOCK_BYTES, block_rows, is_dask, one_blas_thread, row_max
from calibrate._core.validation import MAX_BINS, CalibrationWarning, InputError, check_choice
from calibrate.calibrators import _budget
from calibrate.calibrators._schema import Array, Bool, Choice, Number, Seq
from calibrate.calibrators.base import Calibrator, log_softmax64, one_vs_rest_log_odds

_TYPICAL_LBFGS_EVALS = 100  # matrix scaling: evaluations of a typical fit (a lower estimate)

# ====================================================================== temperature
# the derivative pass holds three float64 working copies of a block: half the package's
# block each, so the three stay in a core's L2 cache (1 MiB or more) between operations
_PASS_BYTES = BLOCK_BYTES // 2
_EXP_FLOOR = -700.0


def nll_derivative_sums(z, y, a: float, also_at: float | None = None, *, dtype=np.float64,
                        with_mean: bool = True) -> np.ndarray:
    """One pass over (n, k) logits: the row sums that give the NLL of softmax(a z) and
    its first five derivatives in a = 1/T.

    Per row, with zs = z - max_j z and p = softmax(a zs): f = log sum_j exp(a zs_j) -
    a zs_y; f' = E_p[zs] - zs_y; f'' = Var_p(zs) >= 0 (so the NLL is convex in a);
    f''' = E_p[(zs - E_p zs)^3]. The moments come from the raw sums sum_j e_j zs_j^r
    (e_j = exp(a zs_j)): the top logit has zs = 0 and p >= 1/k there, so Var_p(zs) >=
    E_p[zs]^2 / k and f'' loses at most log10(k) digits to cancellation; f' (which alone
    fixes the optimum) has none. Rows are read in blocks and converted to ``dtype`` one
    block at a time (z may be float32 or memory-mapped; it is never copied whole), with
    BLAS on one thread (see calibrate._core.blocks.one_blas_thread); the exponential is
    numpy's. dtype float32 is for a starting point only (the fit's own passes are float64).
    Returns float64 [rows, sum f, sum f', sum f'', sum f''', sum (mean_j zs_j - zs_y)
    (0 unless with_mean), rows whose label is not a top logit, sum f at a = also_at (0
    when None), sum f'''', sum f''''']: f at also_at lets the first pass of a fit also give
    the NLL at T = 1 for one more exp per value; f'''' and f''''' (the 4th and 5th
    cumulants of zs under p) let it stop after one pass when it starts close enough.
    """
    with one_blas_thread():
        return _nll_derivative_sums(z, y, a, also_at, np.dtype(dtype), with_mean)


def _nll_derivative_sums(z, y, a, also_at, dtype, with_mean):
    """The pass itself (see nll_derivative_sums)."""
    n, k = z.shape
    out = np.zeros(10)
    rows = block_rows(k, 8, _PASS_BYTES)
    # Short rows (k <= 64) are worked on transposed, (k, m): the maxima and sums over a
    # row become k - 1 vector operations over m values, 2x faster than numpy's (or
    # BLAS's) short-axis reductions; long rows stay (m, k) and are summed along the row.
    by_column = k <= 64
    axis = 0 if by_column else 1

    def rowsum(x):  # float64 sums per row (the float32 start pass sums in float32, then converts)
        return x.sum(axis=axis).astype(np.float64, copy=False)

    bufs = None
    # exp(-700) = 1e-304 (float32: exp(-87) = 1.6e-38) instead of a subnormal (subnormal
    # arithmetic is ~100x slower): a zs is clamped there when any value of the block is
    # below; against the row's own exp(0) = 1 the change is below 1e-299 (1e-34)
    floor = _EXP_FLOOR if dtype == np.float64 else -87.0
    for start in range(0, n, rows):
        zb = z[start:start + rows]
        m = zb.shape[0]
        if bufs is None or bufs[0].size != m * k:  # the first block, and a shorter last one
            bufs = [np.empty((k, m) if by_column else (m, k), dtype) for _ in range(3)]
        zs, e, t = bufs
        yb, ar = y[start:start + m], np.arange(m)
        if by_column:
            np.copyto(zs, zb.T, casting="unsafe")
            zs -= zs.max(axis=0)
            zy = zs[yb, ar].astype(np.float64)
        else:
            np.subtract(zb, row_max(zb)[:, None], out=zs, dtype=dtype)
            zy = zs[ar, yb].astype(np.float64)
        mean_gap = float(rowsum(zs).sum() / k - zy.sum()) if with_mean else 0.0
        zmin = float(zs.min())  # the products b zs below the floor are clamped (rare: gaps beyond 700 / b)
        if also_at is not None:
            if also_at == 1.0 and zmin >= floor:
                np.exp(zs, out=e)
            else:
                _floored(np.multiply(zs, also_at, out=e), also_at * zmin, floor)
                np.exp(e, out=e)
            f_also = np.log(rowsum(e)).sum() - also_at * zy.sum()
        else:
            f_also = 0.0
        _floored(np.multiply(zs, a, out=e), a * zmin, floor)
        np.exp(e, out=e)
        s0 = rowsum(e)
        m1 = rowsum(np.multiply(e, zs, out=t)) / s0
        r2 = rowsum(np.multiply(t, zs, out=t)) / s0
        r3 = rowsum(np.multiply(t, zs, out=t)) / s0
        r4 = rowsum(np.multiply(t, zs, out=t)) / s0
        r5 = rowsum(np.multiply(t, zs, out=t)) / s0
        # central moments from the raw ones, then the cumulants k4 = mu4 - 3 mu2^2, k5 = mu5 - 10 mu3 mu2
        mm = m1 * m1
        mu2 = np.maximum(r2 - mm, 0.0)
        mu3 = r3 - m1 * (3.0 * r2 - 2.0 * mm)
        mu4 = r4 - m1 * (4.0 * r3 - 6.0 * m1 * r2 + 3.0 * mm * m1)
        mu5 = r5 - m1 * (5.0 * r4 - 10.0 * m1 * r3 + 10.0 * mm * r2 - 4.0 * mm * mm)
        out += (m, np.log(s0).sum() - a * zy.sum(), (m1 - zy).sum(), mu2.sum(), mu3.sum(), mean_gap,
                np.count_nonzero(zy < 0), f_also, (mu4 - 3.0 * mu2 * mu2).sum(), (mu5 - 10.0 * mu3 * mu2).sum())
    return out


class TemperatureFitError(InputError):
    """No finite temperature minimises the NLL of these logits (the message says why)."""


def fit_temperature_nll(z, y, bounds=None, max_iter: int = 100, start: float | None = None,
                        tol: float = 1e-7, sums=nll_derivative_sums, want_nll_at_1: bool = True):
    """The temperature T > 0 that minimises the NLL of softmax(z / T), and its diagnostics.

    z: (n, k) float logits (float32, float64 or memory-mapped; read in row blocks),
    y: (n,) int labels. ``sums(z, y, a)`` is the pass (replaceable: the dask version
    runs it on a cluster).
    Safeguarded Halley/Newton on a = 1/T, on which the NLL is convex: each pass over the
    data (:func:`nll_derivative_sums`) gives the NLL and its first three derivatives. A
    step that leaves the known bracket moves by at most a factor 10 toward the untested
    side (so the bracket widens geometrically) or bisects. When the step is below
    ``tol`` (relative; 0.1 sqrt(tol) for a Halley step) it is taken without another
    pass: the error after it is of order tol^2, and the NLL and gradient reported at the final T
    are the Taylor values from that last pass. On large inputs the iteration starts
    from the optimum on an evenly strided eighth of the rows (float32 passes), so 1 or 2
    full passes do: a pass also gives the 4th and 5th derivatives, and when the start is
    close, the root of that 5-term Taylor model of f' is taken without another pass
    provided its terms shrink fast enough that the next one would move it by less than
    tol / 100 (relative; see _taylor_root).

    bounds: None (default) searches all of (0, inf) and refuses, with the reason, when no
    finite optimum exists: every label is a top logit (the NLL falls as T -> 0), or the
    labels' logits are on average no higher than the mean logit (the optimum is T -> inf).
    (low, high): the search is confined there and stops at a bound (at_bound).
    Returns (T, info), info = dict(nll, nll_at_1 (from the first pass), grad_log_t,
    n_iter (passes over all rows), at_bound).
    """
    n, k = z.shape
    if start is None and n >= 512:  # a start from 1/8 of the rows (>= 64), itself started the same way
        # the start needs no precision: its passes are float32 (2-4x cheaper than float64)
        sub = _float32_sums if sums is nll_derivative_sums else sums
        try:
            start, _ = fit_temperature_nll(z[::8], y[::8], bounds, max_iter, tol=1e-4, sums=sub,
                                           want_nll_at_1=False)
        except (TemperatureFitError, RuntimeError, ArithmeticError):
            start = None
        if start is not None and not (math.isfinite(start) and start > 0):
            start = None
    a_min, a_max = (0.0, math.inf) if bounds is None else (1.0 / bounds[1], 1.0 / bounds[0])
    lo, hi = a_min, a_max
    a = min(max(1.0 if start is None else 1.0 / start, a_min), a_max)
    at_bound = False
    nll_at_1 = None
    prev_step = None
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported after the loop)
        tot = sums(z, y, a, 1.0 if it == 1 and a != 1.0 and want_nll_at_1 else None, with_mean=it == 1)
        cnt = tot[0]
        f, g, h, t3 = tot[1] / cnt, tot[2] / cnt, tot[3] / cnt, tot[4] / cnt
        if a == 1.0:
            nll_at_1 = f
        elif it == 1 and want_nll_at_1:
            nll_at_1 = tot[7] / cnt
        if it == 1 and bounds is None:
            if tot[6] == 0:
                raise TemperatureFitError(
                    "logits: every row's label has the largest logit, so the NLL keeps falling as T -> 0 "
                    "and no temperature minimises it; give bounds=(low, high) to fit within a range")
            if tot[5] / cnt >= 0:
                raise TemperatureFitError(
                    "logits: the labels' logits are on average no higher than the mean logit, so the NLL "
                    "falls as T -> inf (uniform predictions): the logits carry no usable ranking")
        if g > 0:
            hi = a
        elif g < 0:
            lo = a
        else:
            break
        if (a == a_max and g < 0) or (a == a_min and g > 0):  # optimum at (or beyond) a bound
            at_bound = True
            break
        if h > 0:
            newton = -g / h
            c = (g / h) * (t3 / h) / 2.0  # not g t3 / h^2: h^2 underflows on separable rows
            halley = abs(c) < 0.5
            step = newton / (1.0 - c) if halley else newton  # Halley when safe
        else:
            step, halley = -math.copysign(math.inf, g), False
        cand = a + step
        # Slow progress toward a side nothing has bracketed yet (separable rows: the NLL
        # tail is ~exp(-a margin), where Newton adds only ~1/margin to a per pass): when
        # a step is not at least half as short as the previous one in the same direction,
        # move geometrically instead (x2 in a, or /2), reaching a bound in log2 passes.
        if prev_step is not None and step * prev_step > 0 and abs(step) > 0.5 * abs(prev_step):
            if step > 0 and hi == a_max:
                cand = max(cand, min(2.0 * a, a_max))
            elif step < 0 and lo == a_min:
                cand = min(cand, max(a / 2.0, a_min))
        prev_step = step
        if not lo < cand < hi:
            # Left the bracket: toward an untested side move by a factor 10 (the bound
            # itself when that reaches it); inside a known bracket, bisect.
            if cand >= hi:
                cand = min(10.0 * a, a_max) if hi == a_max else _mid(lo, hi)
            else:
                cand = max(a / 10.0, a_min) if lo == a_min else _mid(lo, hi)
                if cand == 0.0:
                    cand = a / 10.0
        elif abs(step) <= (math.sqrt(tol) * 0.1 if halley else tol) * a:
            # converged: take the last step, with the Taylor values of f and f' there
            f += g * step + h * step * step / 2 + t3 * step**3 / 6
            g += h * step + t3 * step * step / 2
            a = cand
            break
        elif h > 0 and abs(step) <= 0.05 * a:
            # close: the root of the 5-term Taylor model of f' is the optimum when that
            # model's terms shrink fast enough that the next one moves it by < tol / 100
            taylor = _taylor_root(g, h, t3, tot[8] / cnt, tot[9] / cnt, step, 0.01 * tol * a)
            if taylor is not None and lo < a + taylor[0] < hi:
                ds, f_gain, g = taylor
                f += f_gain
                a += ds
                break
        if lo > 0 and hi / lo - 1.0 < 1e-15:
            break
        a = cand
    else:
        raise RuntimeError(
            f"temperature fit: Newton did not converge in {max_iter} iterations (last T={1 / a:.6g})"
        )
    info = {"nll": f, "nll_at_1": nll_at_1, "grad_log_t": -a * g, "n_iter": it, "at_bound": at_bound}
    return 1.0 / a, info


def _floored(x, x_min, floor):
    """x clamped below at ``floor`` in place, only when its minimum ``x_min`` is below."""
    if x_min < floor:
        np.maximum(x, floor, out=x)
    return x


def _taylor_root(g, h, t3, t4, t5, step, atol):
    """The root s of g + h s + t3 s^2/2 + t4 s^3/6 + t5 s^4/24 near ``step`` (Newton), when
    the model's terms decrease geometrically at s with ratio rho < 1/2 and the estimated
    remainder |t5 s^4/24| rho / (1 - rho) / h is at most ``atol`` in a; otherwise None.
    Returns (s, f(a + s) - f(a), f'(a + s)) from the 6-term model of f."""
    s = step
    for _ in range(4):
        gs = g + s * (h + s * (t3 / 2 + s * (t4 / 6 + s * t5 / 24)))
        hs = h + s * (t3 + s * (t4 / 2 + s * t5 / 6))
        if not hs > 0:
            return None
        s -= gs / hs
    terms = [abs(h * s), abs(t3 * s * s / 2), abs(t4 * s**3 / 6), abs(t5 * s**4 / 24)]
    if min(terms[:3]) == 0.0:
        return None
    rho = max(terms[i + 1] / terms[i] for i in range(3))
    if not (rho < 0.5 and terms[3] * rho / (1.0 - rho) / h <= atol):
        return None
    gs = g + s * (h + s * (t3 / 2 + s * (t4 / 6 + s * t5 / 24)))
    df = s * (g + s * (h / 2 + s * (t3 / 6 + s * (t4 / 24 + s * t5 / 120))))
    return s, df, gs


def _float32_sums(z, y, a, also_at=None, with_mean=True):
    """nll_derivative_sums in float32: for the starting point of a fit only."""
    return nll_derivative_sums(z, y, a, also_at, dtype=np.float32, with_mean=with_mean)


def _mid(lo, hi):
    return math.sqrt(lo * hi) if lo > 0 and math.isfinite(hi) else (lo + hi) / 2


class TemperatureScaling(Calibrator):
    """p = softmax(z / T) with one scalar T > 0 (Guo et al. 2017). Keeps the arg-max.

    objective: "nll" (default) finds the exact minimiser of the validation NLL (see
    :func:`fit_temperature_nll`); "ece" minimises the validation ECE (``n_bins``
    equal-width bins) by a log-spaced grid of 400 temperatures refined by a bounded
    scalar search (the ECE is not smooth in T, so this is a best-on-grid fit).
    bounds: None (default: all of (0, inf), refusing with the reason when no finite
    optimum exists) or (low, high) to confine T (at_bound_, with a warning, when the fit
    stops at one).

    Works in row blocks on float32 or memory-mapped logits of any shape: the memory is
    the input plus a few MiB. Dask arrays are fitted on their cluster.
    Fitted: temperature_, nll_before_ (NLL at T = 1), nll_after_, grad_log_t_
    (dNLL/dlog T at the optimum), n_iter_ (passes over the data), at_bound_.
    """

    name = "temperature"
    param_schema = {"objective": Choice("nll", "ece"),
                    "bounds": Seq(Number(gt=0), 2, increasing=True, nullable=True),
                    "n_bins": Number(integer=True, ge=1, le=MAX_BINS)}
    state_schema = {"temperature_": Number(gt=0), "nll_before_": Number(ge=0), "nll_after_": Number(ge=0),
                    "grad_log_t_": Number(finite=False), "n_iter_": Number(integer=True, ge=0),
                    "at_bound_": Bool()}
    _keep_dtype = True  # _fit and _log_proba take float32 / memory-mapped logits as they are

    def __init__(self, objective: str = "nll", bounds: tuple | None = None, n_bins: int = 15):
        self.objective = objective
        self.bounds = bounds
        self.n_bins = n_bins

    def fit(self, logits, labels, *, kind: str | None = None):
        if is_dask(logits) or is_dask(labels):
            self._fit_with(fit_temperature_dask, logits, labels)
            return self
        return super().fit(logits, labels, kind=kind)

    def _bounds(self):
        if self.bounds is None:
            return None
        try:
            lo, hi = (float(b) for b in self.bounds)
        except (TypeError, ValueError):
            raise InputError(f"bounds: expected None or (low, high), got {self.bounds!r}") from None
        if not 0 < lo < hi:
            raise InputError(f"bounds: expected None or 0 < low < high, got {self.bounds!r}")
        return lo, hi

    def _fit(self, z, y):
        check_choice(self.objective, "objective", ("nll", "ece"))
        if self.objective == "nll":
            self._fit_with(fit_temperature_nll, z, y)
            return
        bounds = self._bounds() or (0.05, 100.0)
        z = np.asarray(z, dtype=np.float64)
        t, info = _fit_temperature_ece(z, y, bounds, self.n_bins)
        s = _nll_sums(z, y, 1.0 / t, also_at=1.0)  # the NLL at T and at 1 from one pass
        self.nll_before_ = float(s[7] / s[0])
        self.nll_after_ = float(s[1] / s[0])
        self._set(z.shape[1], t, info)

    def _fit_with(self, fitter, z, y):
        check_choice(self.objective, "objective", ("nll",))
        t, info = fitter(z, y, self._bounds())
        f1 = info["nll_at_1"]  # the NLL at T = 1 costs a pass only if the fit never made one there
        if f1 is None:
            s = _nll_sums(z, y, 1.0)
            f1 = s[1] / s[0]
        self.nll_before_ = float(f1)
        self.nll_after_ = float(info["nll"])
        self._set(z.shape[1], t, info)

    def _set(self, k, t, info):
        self.n_classes_ = int(k)
        self.temperature_ = float(t)
        self.grad_log_t_ = float(info["grad_log_t"])
        self.n_iter_ = int(info["n_iter"])
        self.at_bound_ = bool(info["at_bound"])
        if self.at_bound_:
            warnings.warn(f"TemperatureScaling: the NLL optimum lies at or beyond the bound T = {t:.6g} "
                          f"(bounds {self.bounds}); widen the bounds or use bounds=None", RuntimeWarning,
                          stacklevel=4)

    def predict_log_proba(self, logits, *, kind: str | None = None):
        if is_dask(logits):
            self._check_fitted()
            if logits.ndim != 2 or logits.shape[1] != self.n_classes_:
                raise InputError(f"logits: this calibrator was fitted on {self.n_classes_} classes, "
                                 f"got shape {logits.shape}")
            return self._log_proba(logits)
        return super().predict_log_proba(logits, kind=kind)

    def _log_proba(self, z):
        return _dispatch.map_rows(functools.partial(_scaled_log_softmax, 1.0 / self.temperature_), z)

    def summary(self):
        return {"T": self.temperature_}

    def to_torch(self):
        """A torch.nn.Module that divides logits by the fitted temperature."""
        self._check_fitted()
        from calibrate.integrations.torch.modules import TemperatureModule

        return TemperatureModule(self.temperature_)


def _scaled_log_softmax(a: float, zb) -> np.ndarray:
    """(m, k) float64 log-softmax of a * zb."""
    return log_softmax64(np.multiply(zb, a, dtype=np.float64))


def _nll_sums(z, y, a: float, also_at: float | None = None, with_mean: bool = True) -> np.ndarray:
    """nll_derivative_sums of one pass (over the row chunks of a dask z, on its cluster)."""
    return _dispatch.map_reduce(functools.partial(nll_derivative_sums, with_mean=with_mean), z, y, a, also_at)


def fit_temperature_dask(z, labels, bounds=None):
    """fit_temperature_nll where each pass (NLL and derivatives at one T) is a dask pass."""
    from calibrate._core.validation import check_labels
    from calibrate.backends.dask import prepare, value_range

    z, y = prepare(z, labels, "logits")
    if z.shape[1] < 2:
        raise InputError(f"logits: a calibrator needs at least 2 classes, got shape {z.shape}")
    check_labels(np.array(value_range(y)), None, z.shape[1])
    if z.dtype.kind not in "fiu":
        raise InputError(f"logits: expected a float array, got dtype {z.dtype}")
    return fit_temperature_nll(z, y, bounds, sums=_nll_sums)


def _fit_temperature_ece(z, y, bounds, n_bins):
    from calibrate.metrics.calibration import ece

    def obj(log_t):
        return ece(np.exp(log_softmax64(z / math.exp(log_t))), y, n_bins)

    grid = np.linspace(math.log(bounds[0]), math.log(bounds[1]), 400)
    vals = np.array([obj(g) for g in grid])
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(obj, bounds=(a, b), method="bounded", options={"xatol": 1e-6})
    log_t = res.x if res.fun <= vals[i] else grid[i]
    t = math.exp(log_t)
    at_bound = i in (0, grid.size - 1)
    return t, {"grad_log_t": float("nan"), "n_iter": grid.size + res.nfev, "at_bound": at_bound}


# ====================================================================== affine
class _AffineScaling(Calibrator):
    """p = softmax(W z + b), W diagonal (vector) or full (matrix), fitted by L-BFGS-B.

    Objective: mean NLL + reg * (||W - I||^2 + ||b||^2), with the exact gradient, in
    float64, started from the temperature-scaled identity.
    """

    diagonal = True
    param_schema = {"reg": Number(ge=0), "max_iter": Number(integer=True, ge=1), "tol": Number(gt=0)}
    state_schema = {"weights_": Array(("k",)), "bias_": Array(("k",)), "loss_": Number(ge=0),
                    "max_abs_grad_": Number(ge=0), "n_iter_": Number(integer=True, ge=0),
                    "diverged_": Bool().optional()}

    def __init__(self, reg: float = 0.0, max_iter: int = 5000, tol: float = 1e-10):
        self.reg = reg
        self.max_iter = max_iter
        self.tol = tol

    def _unpack(self, theta, k):
        if self.diagonal:
            return theta[:k], theta[k:]
        return theta[: k * k].reshape(k, k), theta[k * k :]

    def _transform(self, z, w, b):
        return z * w + b if self.diagonal else z @ w.T + b

    def _fit(self, z, y):
        if self.reg < 0:
            raise InputError(f"reg: expected a value >= 0, got {self.reg}")
        n, k = z.shape
        t, t_info = fit_temperature_nll(z, y, (0.05, 100.0))
        onehot = np.zeros((n, k))
        onehot[np.arange(n), y] = 1.0
        eye = np.ones(k) if self.diagonal else np.eye(k)
        w0 = eye / t

        def fun(theta):
            w, b = self._unpack(theta, k)
            zz = self._transform(z, w, b)
            lp = log_softmax64(zz)
            loss = -np.mean(lp[np.arange(n), y])
            gz = (np.exp(lp) - onehot) / n  # dloss/dzz
            gw = (gz * z).sum(axis=0) if self.diagonal else gz.T @ z
            gb = gz.sum(axis=0)
            dw = w - eye
            loss += self.reg * (np.sum(dw * dw) + np.sum(b * b))
            gw = gw + 2 * self.reg * dw
            gb = gb + 2 * self.reg * b
            return loss, np.concatenate([gw.ravel(), gb])

        theta0 = np.concatenate([w0.ravel(), np.zeros(k)])
        if not self.diagonal:
            # one evaluation (loss and gradient) times a typical L-BFGS count: refuse a fit of minutes
            t1, _ = _budget.timed(lambda: fun(theta0))
            _budget.check(f"{type(self).__name__} on {n:,} x {k}", t1 * _TYPICAL_LBFGS_EVALS,
                          getattr(self, "allow_slow", True),
                          f"{k * k + k:,} parameters, {t1:.2g} s per evaluation, about {_TYPICAL_LBFGS_EVALS} evaluations")
        res = minimize(
            fun, theta0, jac=True, method="L-BFGS-B",
            options={"maxiter": self.max_iter, "maxcor": 20, "ftol": self.tol * 1e-3, "gtol": self.tol},
        )
        grad = np.abs(res.jac).max()
        if not res.success and grad > 1e-4:
            raise RuntimeError(f"{type(self).__name__}: L-BFGS-B failed: {res.message} (max |grad| {grad:.3g})")
        w, b = self._unpack(res.x, k)
        diverged = self.reg == 0 and self._diverges(fun, res.x, w0, t_info["nll"], res.fun, res.nit)
        self.weights_ = np.array(w)
        self.bias_ = np.array(b)
        self.loss_ = float(res.fun)
        self.max_abs_grad_ = float(grad)
        self.n_iter_ = int(res.nit)
        self.diverged_ = bool(diverged)

    def _diverges(self, fun, theta, w0, nll_temperature, nll, n_iter) -> bool:
        """True (and a CalibrationWarning) when the unregularised fit has no finite optimum.

        On separable validation data the NLL keeps falling as the weights grow: L-BFGS
        stops at large weights only because the loss has become flat, and the calibrator
        is over-confident on new data. The NLL is convex, so at a true minimiser theta
        f(2 theta) > f(theta); f(2 theta) < f(theta) means the minimum lies at infinity
        along theta.
        """
        if fun(2.0 * theta)[0] >= nll:
            return False
        size = float(np.abs(theta).max())
        start = float(np.abs(w0).max())
        warnings.warn(
            f"{type(self).__name__}: the fit diverges: the NLL on the fitting data keeps falling as the "
            f"weights grow (max |weight| {size:.3g}, {size / start:.3g}x the temperature start, after "
            f"{n_iter} iterations; NLL {nll:.3g} vs {nll_temperature:.3g} for temperature scaling): the "
            "data are (nearly) separable and the weights are unbounded; use reg > 0 (e.g. reg=1e-2), "
            "more validation data, or temperature scaling", CalibrationWarning, stacklevel=4)
        return True

    def _log_proba(self, z):
        return log_softmax64(self._transform(z, self.weights_, self.bias_))


class VectorScaling(_AffineScaling):
    """p = softmax(w * z + b), w and b of shape (k,) (Guo et al. 2017). reg: L2 toward w=1, b=0."""

    name = "vector"
    diagonal = True

    def summary(self):
        return {"mean w": float(np.mean(self.weights_)), "max |b|": float(np.abs(self.bias_).max())}


class MatrixScaling(_AffineScaling):
    """p = softmax(W z + b), W (k, k), b (k,), L2-regularised toward W = I, b = 0.

    reg defaults to 1e-3 (per mean-NLL unit): with k^2 + k parameters an unregularised
    fit overfits a few thousand validation rows (Kull et al. 2019 regularise likewise).
    """

    name = "matrix"
    diagonal = False
    param_schema = {**_AffineScaling.param_schema, "allow_slow": Bool()}
    state_schema = {**_AffineScaling.state_schema, "weights_": Array(("k", "k"))}

    def __init__(self, reg: float = 1e-3, max_iter: int = 5000, tol: float = 1e-10, allow_slow: bool = False):
        super().__init__(reg, max_iter, tol)
        self.allow_slow = allow_slow

    def summary(self):
        k = self.weights_.shape[0]
        return {"||W - I||": float(np.linalg.norm(self.weights_ - np.eye(k))), "max |b|": float(np.abs(self.bias_).max())}


# ====================================================================== Platt
def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def fit_platt(s: np.ndarray, t: np.ndarray, platt_targets: bool = True):
    """Logistic fit P(t=1 | s) = sigmoid(a s + b) by minimising the log loss (Platt 1999).

    platt_targets: replace the 0/1 targets by Platt's (N- + 1)^-1 ... smoothed targets
    (N+ + 1)/(N+ + 2) and 1/(N- + 2), which keep the fit finite on separable data.
    Returns (a, b).
    """
    t = t.astype(np.float64)
    if platt_targets:
        npos = t.sum()
        nneg = t.size - npos
        t = np.where(t > 0, (npos + 1.0) / (npos + 2.0), 1.0 / (nneg + 2.0))
    n = s.size

    def fun(theta):
        x = theta[0] * s + theta[1]
        loss = -(t * _log_sigmoid(x) + (1 - t) * _log_sigmoid(-x)).sum() / n
        r = (np.exp(_log_sigmoid(x)) - t) / n
        return loss, np.array([np.dot(r, s), r.sum()])

    res = minimize(fun, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                   options={"maxiter": 1000, "gtol": 1e-12, "ftol": 1e-15})
    return float(res.x[0]), float(res.x[1])


class PlattScaling(Calibrator):
    """Platt scaling: p = sigmoid(a s + b) on the log-odds s = log p / (1 - p).

    Binary (k = 2): one fit on the log-odds of class 1 (s = z_1 - z_0). k > 2: one fit
    per class on its one-vs-rest log-odds (log p_j - log(1 - p_j), computed from the
    logits without cancellation), then the k probabilities are renormalised to sum to 1
    in log space, so no row is ever all zeros.
    Fitted: a_ (k,) or (1,), b_ likewise.
    """

    name = "platt"
    param_schema = {"platt_targets": Bool()}
    state_schema = {"a_": Array(("c",)), "b_": Array(("c",))}

    @classmethod
    def _state_dims(cls, n_classes):
        return {"k": n_classes, "c": 1 if n_classes == 2 else n_classes}

    def __init__(self, platt_targets: bool = True):
        self.platt_targets = platt_targets

    def _fit(self, z, y):
        s = one_vs_rest_log_odds(z)
        classes = [1] if z.shape[1] == 2 else range(z.shape[1])
        ab = [fit_platt(s[:, j], y == j, self.platt_targets) for j in classes]
        self.a_ = np.array([p[0] for p in ab])
        self.b_ = np.array([p[1] for p in ab])

    def _log_proba(self, z):
        s = one_vs_rest_log_odds(z)
        if z.shape[1] == 2:
            x = self.a_[0] * s[:, 1] + self.b_[0]
            return np.stack([_log_sigmoid(-x), _log_sigmoid(x)], axis=1)
        lq = _log_sigmoid(s * self.a_ + self.b_)
        return log_softmax64(lq)

    def summary(self):
        if self.a_.size == 1:  # binary: one fit, its two numbers
            return {"a": float(self.a_[0]), "b": float(self.b_[0])}
        return {"mean a": float(np.mean(self.a_)), "mean b": float(np.mean(self.b_))}
