"""Scaling calibrators: temperature, vector and matrix scaling (Guo et al. 2017), Platt.

All are fitted by minimising the validation negative log-likelihood in float64.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from .._validation import MAX_BINS, CalibrationWarning, InputError, check_choice
from ._schema import Array, Bool, Choice, Number, Seq
from .base import Calibrator, log_softmax64, one_vs_rest_log_odds


# ====================================================================== temperature
def _nll_derivatives(zs: np.ndarray, zy_mean: float, a: float, buf: np.ndarray):
    """NLL of softmax(a * z) and its first two derivatives in a = 1/T, in one pass.

    zs = z - max_j z (rows shifted so the maximum is 0, float64), zy_mean = mean_i zs[i, y_i],
    buf: scratch of zs's shape. f(a) = mean_i log sum_j exp(a zs_ij) - a zy_mean;
    f'(a) = mean_i E_p[zs] - zy_mean; f''(a) = mean_i Var_p(zs) >= 0, so f is convex in a.
    Row sums are matrix-vector products (BLAS), the only temporaries are (n,) vectors.
    """
    ones = np.ones(zs.shape[1])
    np.multiply(zs, a, out=buf)
    np.exp(buf, out=buf)
    s0 = buf @ ones
    buf *= zs
    s1 = buf @ ones
    buf *= zs
    s2 = buf @ ones
    m1 = s1 / s0
    f = float(np.mean(np.log(s0)) - a * zy_mean)
    g = float(np.mean(m1) - zy_mean)
    h = float(np.mean(np.maximum(s2 / s0 - m1 * m1, 0.0)))
    return f, g, h


def fit_temperature_nll(z: np.ndarray, y: np.ndarray, bounds=(0.05, 100.0), max_iter: int = 100,
                        start: float | None = None):
    """The temperature T in ``bounds`` that minimises the NLL of softmax(z / T).

    Safeguarded Newton on a = 1/T (the NLL is convex in a): each iterate keeps a bracket
    [lo, hi] that holds the optimum; a Newton step that leaves it is replaced by a step
    of a factor 4 toward an untested bound, or by the bracket's geometric midpoint.
    Stops when the relative step is below 1e-12 (quadratic convergence: usually 5 to 8
    passes over the data, each giving the NLL and its first two derivatives).
    On more than 200,000 rows the iteration starts from the optimum of an evenly strided
    subsample of 50,000 rows, so the full data needs only 2 or 3 passes.
    Returns (T, info) with info = dict(nll, grad_log_t, n_iter, at_bound).
    """
    n = z.shape[0]
    if start is None and n > 200_000:
        step = n // 50_000
        start, _ = fit_temperature_nll(z[::step], y[::step], bounds, max_iter)
    zs = np.asarray(z, dtype=np.float64)
    zs = zs - zs.max(axis=1, keepdims=True)
    zy = float(np.mean(zs[np.arange(zs.shape[0]), y]))
    buf = np.empty_like(zs)
    a_min, a_max = 1.0 / bounds[1], 1.0 / bounds[0]
    lo, hi = a_min, a_max
    a = min(max(1.0 if start is None else 1.0 / start, lo), hi)
    at_bound = False
    f = g = 0.0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported after the loop)
        f, g, h = _nll_derivatives(zs, zy, a, buf)
        if g > 0:
            hi = a
        elif g < 0:
            lo = a
        else:
            break
        if a == a_max and g < 0:  # optimum at the smallest temperature
            at_bound = True
            break
        if a == a_min and g > 0:  # optimum at the largest temperature
            at_bound = True
            break
        step = -g / h if h > 0 else math.inf * -np.sign(g)
        cand = a + step
        if not lo < cand < hi:
            # Newton left the bracket. Toward an untested bound move by at most a factor
            # of 4 (the bound itself when that reaches it); inside a known bracket, bisect.
            if cand >= hi:
                cand = min(4.0 * a, a_max) if hi == a_max else math.sqrt(lo * hi)
            else:
                cand = max(a / 4.0, a_min) if lo == a_min else math.sqrt(lo * hi)
        if abs(cand - a) <= 1e-12 * a or hi / lo - 1.0 < 1e-14:
            break  # a is within 1e-12 of the optimum: keep it and its f, g
        a = cand
    else:
        raise RuntimeError(
            f"temperature fit: Newton did not converge in {max_iter} iterations (last T={1 / a:.6g})"
        )
    info = {"nll": f, "grad_log_t": -a * g, "n_iter": it, "at_bound": at_bound}
    return 1.0 / a, info


class TemperatureScaling(Calibrator):
    """p = softmax(z / T) with one scalar T > 0 (Guo et al. 2017). Keeps the arg-max.

    objective: "nll" (default) finds the exact minimiser of the validation NLL in
    ``bounds`` (see :func:`fit_temperature_nll`); "ece" minimises the validation ECE
    (``n_bins`` equal-width bins) by a log-spaced grid of 400 temperatures refined by a
    bounded scalar search (the ECE is not smooth in T, so this is a best-on-grid fit).

    Fitted: temperature_, nll_before_, nll_after_, grad_log_t_ (dNLL/dlog T at the
    optimum), n_iter_, at_bound_.
    """

    name = "temperature"
    param_schema = {"objective": Choice("nll", "ece"), "bounds": Seq(Number(gt=0), 2, increasing=True),
                    "n_bins": Number(integer=True, ge=1, le=MAX_BINS)}
    state_schema = {"temperature_": Number(gt=0), "nll_before_": Number(ge=0), "nll_after_": Number(ge=0),
                    "grad_log_t_": Number(finite=False), "n_iter_": Number(integer=True, ge=0),
                    "at_bound_": Bool()}

    def __init__(self, objective: str = "nll", bounds: tuple = (0.05, 100.0), n_bins: int = 15):
        self.objective = objective
        self.bounds = bounds
        self.n_bins = n_bins

    def _fit(self, z, y):
        check_choice(self.objective, "objective", ("nll", "ece"))
        lo, hi = (float(b) for b in self.bounds)
        if not 0 < lo < hi:
            raise InputError(f"bounds: expected 0 < low < high, got {self.bounds!r}")
        self.nll_before_ = _nll(z, y)
        if self.objective == "nll":
            t, info = fit_temperature_nll(z, y, (lo, hi))
        else:
            t, info = _fit_temperature_ece(z, y, (lo, hi), self.n_bins)
        self.temperature_ = float(t)
        self.nll_after_ = _nll(z / t, y)
        self.grad_log_t_ = float(info["grad_log_t"])
        self.n_iter_ = int(info["n_iter"])
        self.at_bound_ = bool(info["at_bound"])

    def _log_proba(self, z):
        return log_softmax64(z / self.temperature_)

    def summary(self):
        return {"T": self.temperature_}

    def to_torch(self):
        """A torch.nn.Module that divides logits by the fitted temperature."""
        self._check_fitted()
        from ..torch.modules import TemperatureModule

        return TemperatureModule(self.temperature_)


def _nll(z, y) -> float:
    lp = log_softmax64(z)
    return float(-np.mean(lp[np.arange(z.shape[0]), y]))


def _fit_temperature_ece(z, y, bounds, n_bins):
    from ..metrics import ece

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
        t, t_info = fit_temperature_nll(z, y)
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
    state_schema = {**_AffineScaling.state_schema, "weights_": Array(("k", "k"))}

    def __init__(self, reg: float = 1e-3, max_iter: int = 5000, tol: float = 1e-10):
        super().__init__(reg, max_iter, tol)

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
