"""Scaling calibrators: temperature, vector and matrix scaling (Guo et al. 2017), Platt.

All are fitted by minimising the validation negative log-likelihood in float64.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from scipy.optimize import minimize

from calibrate._core import dispatch as _dispatch
from calibrate._core.blocks import is_dask
from calibrate._core.validation import (
    MAX_BINS,
    CalibrationWarning,
    InputError,
    absent_mask,
    check_choice,
)
from calibrate.calibrators import _budget
from calibrate.calibrators._schema import Array, Bool, Choice, Number, Seq
from calibrate.calibrators.base import Calibrator, fill_absent, log_softmax64, one_vs_rest_log_odds
from calibrate.calibrators.temperature_solver import (  # noqa: F401 (public names of this module too)
    TemperatureFitError,
    _fit_temperature_ece,
    _float32_sums,
    _taylor_root,
    fit_temperature_nll,
    nll_derivative_sums,
)

# ====================================================================== temperature

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
    Absent options (-inf logits) stay at probability 0; the fit is the fit on each row's
    finite entries only.
    Fitted: temperature_, nll_before_ (NLL at T = 1), nll_after_, grad_log_t_
    (dNLL/dlog T at the optimum), n_iter_ (passes over the data), at_bound_.
    ``fit(..., record=TemperatureFitRecord())`` (calibrate.calibrators.fit_summary; numpy or
    memory-mapped logits) also keeps the fit's per-row values ((n,) arrays), from which
    the record gives the NLL and top-label ECE before and after without a summary pass.
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

    def fit(self, logits, labels, *, kind: str | None = None, record=None):
        """Fit T on logits (n, k) and labels (n,) (see Calibrator.fit). record: None, or a
        calibrate.calibrators.fit_summary.TemperatureFitRecord to fill (not for dask arrays)."""
        if is_dask(logits) or is_dask(labels):
            if record is not None:
                raise InputError("record: not available for dask arrays (their passes run on the cluster)")
            self._fit_with(fit_temperature_dask, logits, labels)
            return self
        self._record = record
        try:
            return super().fit(logits, labels, kind=kind)
        finally:
            vars(self).pop("_record", None)

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
        if getattr(self, "_record", None) is not None:
            self._record.finish(z, y, 1.0 / t)
        self._set(z.shape[1], t, info)

    def _fit_with(self, fitter, z, y):
        check_choice(self.objective, "objective", ("nll",))
        record = getattr(self, "_record", None)
        t, info = fitter(z, y, self._bounds(), **({} if record is None else {"record": record}))
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
        """A torch.nn.Module that divides logits by the fitted temperature (float64)."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import TemperatureModule

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



# ====================================================================== affine
class _AffineScaling(Calibrator):
    """p = softmax(W z + b), W diagonal (vector) or full (matrix), fitted by L-BFGS-B.

    Objective: mean NLL + reg * (||W - I||^2 + ||b||^2), with the exact gradient, in
    float64, started from the temperature-scaled identity.
    Absent options (-inf logits): W z + b is computed with those logits set to 0 (their
    terms dropped) and the absent outputs set to -inf, in the fit and in predictions.
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
        absent = absent_mask(z)
        z = fill_absent(z)

        def fun(theta):
            w, b = self._unpack(theta, k)
            zz = self._transform(z, w, b)
            if absent is not None:
                zz[absent] = -np.inf
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
        long = not self.diagonal and _budget.announce(type(self).__name__, _budget.fit_size("matrix", n, k), 5)
        bar = _budget.progress(long, None, f"{self.name} fit", "iteration")
        try:
            res = minimize(
                fun, theta0, jac=True, method="L-BFGS-B", callback=lambda *_: bar.update(),
                options={"maxiter": self.max_iter, "maxcor": 20, "ftol": self.tol * 1e-3, "gtol": self.tol},
            )
        finally:
            bar.close()
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
        return log_softmax64(self._transform(fill_absent(z), self.weights_, self.bias_))

    def to_torch(self):
        """A torch.nn.Module: logits * w + b (vector) or logits @ W.T + b (matrix), float64."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import AffineModule

        return AffineModule(self.weights_, self.bias_)


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
    param_schema = {**_AffineScaling.param_schema, "allow_slow": Bool(nullable=True).optional()}
    state_schema = {**_AffineScaling.state_schema, "weights_": Array(("k", "k"))}

    def __init__(self, reg: float = 1e-3, max_iter: int = 5000, tol: float = 1e-10, allow_slow: bool | None = None):
        super().__init__(reg, max_iter, tol)
        self.allow_slow = allow_slow

    def _fit(self, z, y):
        _budget.deprecated_allow_slow(self)
        super()._fit(z, y)

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
    Absent options (-inf logits): class j's map is fitted on the rows where class j is
    present with at least one other option (finite log-odds); predictions are 0 at absent
    options, renormalised over the present ones (a row's only present option gets 1).
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
        ab = []
        for j in classes:
            ok = np.isfinite(s[:, j])  # rows where class j is present beside another option
            if ok.all():
                ab.append(fit_platt(s[:, j], y == j, self.platt_targets))
            elif ok.any():
                ab.append(fit_platt(s[ok, j], y[ok] == j, self.platt_targets))
            else:
                ab.append((1.0, 0.0))
        self.a_ = np.array([p[0] for p in ab])
        self.b_ = np.array([p[1] for p in ab])

    def _log_proba(self, z):
        s = one_vs_rest_log_odds(z)
        if z.shape[1] == 2:
            x = np.where(np.isfinite(s[:, 1]), self.a_[0] * s[:, 1] + self.b_[0], 0.0)
            return np.stack([_log_sigmoid(-x), _log_sigmoid(x)], axis=1)
        with np.errstate(invalid="ignore"):
            lq = _log_sigmoid(np.where(np.isfinite(s), s * self.a_ + self.b_, s))
        return log_softmax64(lq)

    def to_torch(self):
        """A torch.nn.Module computing the calibrated log-probabilities (float64 tensor ops)."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import PlattModule

        return PlattModule(self.a_, self.b_)

    def summary(self):
        if self.a_.size == 1:  # binary: one fit, its two numbers
            return {"a": float(self.a_[0]), "b": float(self.b_[0])}
        return {"mean a": float(np.mean(self.a_)), "mean b": float(np.mean(self.b_))}
