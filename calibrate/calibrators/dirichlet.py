"""Dirichlet calibration (Kull et al. 2019, "Beyond temperature scaling", NeurIPS).

A linear layer on log-probabilities: with x = log softmax(z) (float64),

    q = softmax(W x + b),          W (k, k), b (k,),

fitted by minimising the mean validation NLL plus a penalty:

    "odir" (off-diagonal and intercept regularisation, the paper's Dir-ODIR):
        lambda / (k (k - 1)) * sum_{i != j} W_ij^2  +  mu / k * sum_j b_j^2
    "l2"   (the paper's Dir-L2, full matrix and intercept toward 0):
        lambda / (k (k + 1)) * (sum_ij W_ij^2 + sum_j b_j^2)
    "none" (unregularised).

lambda and mu (or lambda alone for "l2") are chosen by stratified K-fold
cross-validation on the fitting data (seeded), scored by the held-out NLL, unless given.
Fits are in float64, started at W = I, b = 0 (the identity map: q = softmax(log p) = p):
Newton's method with the exact Hessian for k <= 25, L-BFGS-B with the analytic gradient
beyond (and as a fallback); see :func:`fit_dirichlet`.

Absent options (-inf logits, x_j = -inf): W x + b is computed with x_j = 0 (the term
dropped) and output j set to -inf, in the fit (loss, gradient, Hessian) and in predictions.

Every parameter is boxed to [-max_weight, max_weight]: the ODIR penalty leaves the
diagonal of W free, so on separable data, or with a class absent from the fitting data,
the NLL keeps decreasing along W = c I (c -> inf) and an unboxed fit would diverge. A
fit that ends on the box reports ``at_bound_ = True``. The default box (1e4) is wide:
on the committed CIFAR-10 logits a strongly ODIR-penalised fit has diagonal entries near
800 at its (finite) optimum.

Memory: the log-probabilities are computed in row blocks of about 2^21 values (16 MiB
of float64); only when all rows fit in one block are they cached between objective
evaluations, so no float64 (n, k) array beyond one block is held while fitting
(cross-validation folds are indexed, not copied). ``predict_proba`` returns the (n, k)
result and works in the same blocks.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax as _log_softmax

from calibrate._core.blocks import BLOCK_BYTES, all_finite
from calibrate._core.validation import InputError, check_choice
from calibrate.calibrators import _budget
from calibrate.calibrators._schema import Array, Bool, Choice, ListOf, Number
from calibrate.calibrators.base import Calibrator

BLOCK_VALUES = 32 * BLOCK_BYTES // 8  # float64 values per row block: 32 blocks (16 MiB), one BLAS product each

# The grid of ports of the authors' neural-network experiment code for 10 classes:
# lambda in {1, 0.25, 0.5} x 10^i and mu in 10^i, i = -4 ... 3 (some versions extend
# both up to 10^6; pass lambdas= and mus= for another grid).
_POWERS = [10.0**i for i in range(-4, 4)]
DEFAULT_LAMBDAS = tuple(sorted(v * f for v in _POWERS for f in (1.0, 0.25, 0.5)))
DEFAULT_MUS = tuple(_POWERS)


def _row_blocks(n: int, k: int):
    rows = max(1, BLOCK_VALUES // max(k, 1))
    return [(s, min(s + rows, n)) for s in range(0, n, rows)]


class _LogProbs:
    """Row blocks of x = log softmax(z[idx]) in float64, cached when one block holds all."""

    def __init__(self, z: np.ndarray, y: np.ndarray, idx: np.ndarray | None = None):
        self.z, self.idx = z, idx
        self.n = z.shape[0] if idx is None else idx.size
        self.k = z.shape[1]
        self.y = y if idx is None else y[idx]
        self.blocks = _row_blocks(self.n, self.k)
        self.has_absent = not all_finite(z)  # validated logits: only -inf can be non-finite
        self._cache = None
        if len(self.blocks) == 1:
            self._cache = [self._compute(0, self.n)]

    def _rows(self, s, e):
        return self.z[s:e] if self.idx is None else self.z[self.idx[s:e]]

    def _compute(self, s, e):
        """x of rows s:e, 0 where a logit is -inf (an absent option's term is dropped)."""
        x = _log_softmax(self._rows(s, e).astype(np.float64, copy=False), axis=1)
        if self.has_absent:
            x[np.isneginf(x)] = 0.0
        return x

    def absent(self, s, e):
        """(e - s, k) bool, True where rows s:e have an absent option (-inf logit); None if none has."""
        return np.isneginf(self._rows(s, e)) if self.has_absent else None

    def __iter__(self):
        if self._cache is not None:
            yield 0, self.n, self._cache[0]
            return
        for s, e in self.blocks:
            yield s, e, self._compute(s, e)


def _penalty(w: np.ndarray, b: np.ndarray, regularization: str, lam: float, mu: float):
    """(penalty, d/dW, d/db) of the normalised ODIR or L2 penalty."""
    k = w.shape[0]
    if regularization == "none":
        return 0.0, 0.0, 0.0
    if regularization == "l2":
        c = lam / (k * (k + 1))
        return c * (np.sum(w * w) + np.sum(b * b)), 2 * c * w, 2 * c * b
    off = w.copy()
    np.fill_diagonal(off, 0.0)
    c1, c2 = lam / (k * (k - 1)), mu / k
    return c1 * np.sum(off * off) + c2 * np.sum(b * b), 2 * c1 * off, 2 * c2 * b


def dirichlet_objective(theta: np.ndarray, data: _LogProbs, regularization: str, lam: float, mu: float):
    """Mean NLL of softmax(W x + b) plus the penalty, and its exact gradient in theta = [W.ravel(), b]."""
    k = data.k
    w, b = theta[: k * k].reshape(k, k), theta[k * k :]
    loss = 0.0
    gw = np.zeros((k, k))
    gb = np.zeros(k)
    for s, e, x in data:
        a = x @ w.T + b
        if data.has_absent:
            a[data.absent(s, e)] = -np.inf
        r = np.arange(e - s)
        yy = data.y[s:e]
        m = a.max(axis=1)
        loss -= float(np.sum(a[r, yy] - m))
        a -= m[:, None]
        np.exp(a, out=a)
        tot = a.sum(axis=1)
        loss += float(np.sum(np.log(tot)))
        a /= tot[:, None]  # a is now softmax(W x + b)
        a[r, yy] -= 1.0
        gw += a.T @ x
        gb += a.sum(axis=0)
    n = data.n
    pen, pw, pb = _penalty(w, b, regularization, lam, mu)
    return loss / n + pen, np.concatenate([(gw / n + pw).ravel(), gb / n + pb])


def _mean_nll(theta: np.ndarray, data: _LogProbs) -> float:
    return dirichlet_objective(theta, data, "none", 0.0, 0.0)[0]


def _projected_grad(theta, g, lo, hi):
    g = g.copy()
    g[(theta <= lo) & (g > 0)] = 0.0
    g[(theta >= hi) & (g < 0)] = 0.0
    return g


def _column_scales(data: _LogProbs) -> np.ndarray:
    """Root mean square of each column of x (float64, blockwise); 1 where it is 0."""
    s2 = np.zeros(data.k)
    for _, _, x in data:
        s2 += np.einsum("ij,ij->j", x, x)
    sd = np.sqrt(s2 / data.n)
    return np.where(sd > 0, sd, 1.0)


NEWTON_MAX_PARAMS = 650  # k (k + 1) up to this (k <= 25): Newton's method, else L-BFGS-B only


def _hessian(theta: np.ndarray, data: _LogProbs, regularization: str, lam: float, mu: float) -> np.ndarray:
    """Exact Hessian of :func:`dirichlet_objective` in theta = [W.ravel(), b].

    With x~ = [x, 1] and V = [W | b]: H = 1/n sum_i (diag(q_i) - q_i q_i^T) (x) x~_i x~_i^T
    (a Kronecker product per row), accumulated over row blocks.
    """
    k = data.k
    m = k + 1
    w, b = theta[: k * k].reshape(k, k), theta[k * k :]
    h = np.zeros((k * m, k * m))
    for s, e, x in data:
        q = x @ w.T + b
        if data.has_absent:
            q[data.absent(s, e)] = -np.inf
        q = _log_softmax(q, axis=1)
        np.exp(q, out=q)
        xt = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
        bq = (q[:, :, None] * xt[:, None, :]).reshape(x.shape[0], k * m)
        h -= bq.T @ bq
        for i in range(k):
            h[i * m : (i + 1) * m, i * m : (i + 1) * m] += (xt * q[:, i : i + 1]).T @ xt
    h /= data.n
    # V order (i, a) -> theta order: W[i, a] at i * k + a, b[i] at k * k + i
    order = np.array([i * k + a if a < k else k * k + i for i in range(k) for a in range(m)])
    ht = np.empty_like(h)
    ht[np.ix_(order, order)] = h
    if regularization == "l2":
        ht[np.diag_indices_from(ht)] += 2 * lam / (k * (k + 1))
    elif regularization == "odir":
        d = np.zeros(k * m)
        off = ~np.eye(k, dtype=bool).ravel()
        d[: k * k][off] = 2 * lam / (k * (k - 1))
        d[k * k :] = 2 * mu / k
        ht[np.diag_indices_from(ht)] += d
    return ht


def _newton(theta, data, regularization, lam, mu, tol, max_weight, max_iter=100):
    """Damped Newton (Armijo backtracking); None if it leaves the box or does not converge."""
    f, g = dirichlet_objective(theta, data, regularization, lam, mu)
    for it in range(1, max_iter + 1):
        if np.abs(g).max() <= tol:
            return theta, f, g, it - 1
        h = _hessian(theta, data, regularization, lam, mu)
        step = np.linalg.lstsq(h, -g, rcond=None)[0]  # minimum norm: "none" is singular
        slope = float(g @ step)
        if not slope < 0:
            step, slope = -g, -float(g @ g)
        t = 1.0
        for _ in range(60):
            cand = theta + t * step
            fc, gc = dirichlet_objective(cand, data, regularization, lam, mu)
            if fc <= f + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            return theta, f, g, it  # no decrease left at machine precision
        if np.abs(cand).max() > max_weight:
            return None
        done = f - fc <= 1e-15 * max(1.0, abs(f)) and np.abs(gc).max() <= 1e3 * tol
        theta, f, g = cand, fc, gc
        if done:
            return theta, f, g, it
    return None


def fit_dirichlet(data: _LogProbs, regularization: str, lam: float, mu: float, theta0=None,
                  max_iter: int = 10000, tol: float = 1e-10, max_weight: float = 1e4):
    """Minimise :func:`dirichlet_objective`. Returns (theta, info).

    For k (k + 1) <= NEWTON_MAX_PARAMS, Newton's method with the exact Hessian (as the
    authors' code does for k <= 36), typically 5 to 15 steps to |grad| <= tol. It hands
    over to L-BFGS-B when it would leave the box or does not converge, and L-BFGS-B is
    the only method for more classes. L-BFGS-B runs on the rescaled columns x' = x / s,
    s the root mean square of each column (the same model, better conditioned:
    log-probabilities of unlikely classes reach -50 and below): W = W' / s per column;
    the objective and the box are the ones on (W, b), mapped through this change of
    variables. (Centring the columns as well couples b to W' and slows the strongly
    penalised fits.)
    """
    k = data.k
    sd = _column_scales(data)

    def to_wb(t):
        w2 = t[: k * k].reshape(k, k)
        return np.concatenate([(w2 / sd).ravel(), t[k * k :]])

    def fun(t):
        f, g = dirichlet_objective(to_wb(t), data, regularization, lam, mu)
        gw, gb = g[: k * k].reshape(k, k), g[k * k :]
        return f, np.concatenate([(gw / sd).ravel(), gb])

    if theta0 is None:
        theta0 = np.concatenate([np.eye(k).ravel(), np.zeros(k)])
    if k * (k + 1) <= NEWTON_MAX_PARAMS:
        out = _newton(theta0, data, regularization, lam, mu, tol, max_weight)
        if out is not None:
            theta, f, g, it = out
            at_bound = bool(np.any(np.abs(theta) >= max_weight * (1 - 1e-9)))
            return theta, {"loss": float(f), "max_abs_grad": float(np.abs(g).max()), "n_iter": it,
                           "at_bound": at_bound, "method": "newton"}
    w0, b0 = theta0[: k * k].reshape(k, k), theta0[k * k :]
    t0 = np.concatenate([(w0 * sd).ravel(), b0])
    bw = np.concatenate([max_weight * np.tile(sd, k), np.full(k, max_weight)])
    bounds = [(-v, v) for v in bw]
    res = minimize(
        fun, t0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": max_iter, "maxcor": 30, "ftol": tol * 1e-4, "gtol": tol, "maxls": 50},
    )
    theta = to_wb(res.x)
    grad = float(np.abs(_projected_grad(res.x, res.jac, -bw, bw)).max())
    if not res.success and grad > 1e-4:
        raise RuntimeError(f"DirichletCalibration: L-BFGS-B failed: {res.message} (max |grad| {grad:.3g})")
    at_bound = bool(np.any(np.abs(res.x) >= bw * (1 - 1e-9)))
    return theta, {"loss": float(res.fun), "max_abs_grad": grad, "n_iter": int(res.nit), "at_bound": at_bound,
                   "method": "L-BFGS-B"}


class DirichletCalibration(Calibrator):
    """q = softmax(W log p + b) with ODIR or L2 regularisation (Kull et al. 2019).

    regularization: "odir" (default), "l2" or "none" (formulas in the module docstring).
    reg_lambda, reg_mu: fixed penalties; None (default) chooses each by ``cv``-fold
    stratified cross-validation (shuffled with ``seed``) over ``lambdas`` x ``mus``
    (``mus`` only for "odir"), scored by the mean held-out NLL.
    max_weight: box on every parameter (see the module docstring).

    Fitted: weights_ (k, k), bias_ (k,), reg_lambda_, reg_mu_, cv_nll_ (len(lambdas),
    len(mus)) held-out NLL of each grid point (empty when nothing was cross-validated),
    loss_ (the penalised objective), max_abs_grad_, n_iter_, at_bound_.
    """

    name = "dirichlet"
    param_schema = {
        "regularization": Choice("odir", "l2", "none"),
        "reg_lambda": Number(ge=0, nullable=True), "reg_mu": Number(ge=0, nullable=True),
        "lambdas": ListOf(Number(ge=0), min_len=1), "mus": ListOf(Number(ge=0), min_len=1),
        "cv": Number(integer=True, ge=2, le=1000), "seed": Number(integer=True, ge=0),
        "max_weight": Number(gt=0), "max_iter": Number(integer=True, ge=1), "tol": Number(gt=0),
    }
    state_schema = {
        "weights_": Array(("k", "k")), "bias_": Array(("k",)),
        "reg_lambda_": Number(ge=0), "reg_mu_": Number(ge=0),
        "cv_nll_": Array(("L", "M"), finite=False).optional(),
        "loss_": Number(finite=False), "max_abs_grad_": Number(ge=0, finite=False),
        "n_iter_": Number(integer=True, ge=0), "at_bound_": Bool(),
    }

    def __init__(self, regularization: str = "odir", reg_lambda: float | None = None,
                 reg_mu: float | None = None, lambdas: tuple = DEFAULT_LAMBDAS, mus: tuple = DEFAULT_MUS,
                 cv: int = 5, seed: int = 0, max_weight: float = 1e4, max_iter: int = 10000,
                 tol: float = 1e-10):
        self.regularization = regularization
        self.reg_lambda = reg_lambda
        self.reg_mu = reg_mu
        self.lambdas = lambdas
        self.mus = mus
        self.cv = cv
        self.seed = seed
        self.max_weight = max_weight
        self.max_iter = max_iter
        self.tol = tol

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        check_choice(self.regularization, "regularization", ("odir", "l2", "none"))
        for name in ("reg_lambda", "reg_mu"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v >= 0):
                raise InputError(f"{name}: expected None or a finite value >= 0, got {v!r}")
        for name in ("lambdas", "mus"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0):
                raise InputError(f"{name}: expected a non-empty list of finite values >= 0, got {getattr(self, name)!r}")
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise InputError(f"cv: expected an integer >= 2, got {self.cv!r}")
        if not (np.isfinite(self.max_weight) and self.max_weight > 0):
            raise InputError(f"max_weight: expected a finite value > 0, got {self.max_weight!r}")

    def _fit_kwargs(self):
        return {"max_iter": self.max_iter, "tol": self.tol, "max_weight": float(self.max_weight)}

    # ------------------------------------------------------------------ fit
    def _fit(self, z, y):
        self._check_params()
        reg = self.regularization
        lam = 0.0 if self.reg_lambda is None and reg == "none" else self.reg_lambda
        mu = 0.0 if reg != "odir" else self.reg_mu
        lambdas = [float(v) for v in self.lambdas] if lam is None else [float(lam)]
        mus = [float(v) for v in self.mus] if mu is None else [float(mu)]
        scores = np.empty((0, 0))
        grid = len(lambdas) * len(mus) if lam is None or mu is None else 0
        long = _budget.announce(type(self).__name__, _budget.fit_size("dirichlet", *z.shape, grid=grid, cv=self.cv))
        bar = _budget.progress(long, grid * int(self.cv) + 1, f"{self.name} fit", "fit")
        try:
            if grid:
                scores = self._cross_validate(z, y, lambdas, mus, bar)
                i, j = np.unravel_index(int(np.argmin(scores)), scores.shape)
                lam, mu = lambdas[i], mus[j]
            theta, info = fit_dirichlet(_LogProbs(z, y), reg, float(lam), float(mu), **self._fit_kwargs())
            bar.update()
        finally:
            bar.close()
        k = z.shape[1]
        self.weights_ = theta[: k * k].reshape(k, k).copy()
        self.bias_ = theta[k * k :].copy()
        self.reg_lambda_ = float(lam)
        self.reg_mu_ = float(mu)
        self.cv_nll_ = scores
        self.loss_ = info["loss"]
        self.max_abs_grad_ = info["max_abs_grad"]
        self.n_iter_ = info["n_iter"]
        self.at_bound_ = info["at_bound"]

    def _cross_validate(self, z, y, lambdas, mus, bar=None):
        from sklearn.model_selection import StratifiedKFold

        n = z.shape[0]
        if n < self.cv:
            raise InputError(f"logits: {self.cv}-fold cross-validation needs at least {self.cv} rows, got {n}")
        skf = StratifiedKFold(n_splits=int(self.cv), shuffle=True, random_state=int(self.seed))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            folds = list(skf.split(np.zeros((n, 1)), y))
        scores = np.zeros((len(lambdas), len(mus)))
        kw = self._fit_kwargs()
        kw["tol"] = max(self.tol, 1e-8)  # held-out NLLs to about 1e-9 are plenty to rank the grid
        for train, test in folds:
            tr, te = _LogProbs(z, y, train), _LogProbs(z, y, test)
            theta = None
            for i, lam in enumerate(lambdas):
                for j, mu in enumerate(mus):
                    # warm start from the previous grid point (the objective is convex)
                    theta, _ = fit_dirichlet(tr, self.regularization, lam, mu, theta0=theta, **kw)
                    scores[i, j] += _mean_nll(theta, te) * test.size / n
                    if bar is not None:
                        bar.update()
        return scores

    # ------------------------------------------------------------------ predict
    def _log_proba(self, z):
        out = np.empty(z.shape, dtype=np.float64)
        for s, e in _row_blocks(z.shape[0], z.shape[1]):
            x = _log_softmax(z[s:e].astype(np.float64, copy=False), axis=1)
            absent = np.isneginf(x)
            if absent.any():
                x[absent] = 0.0
                a = x @ self.weights_.T + self.bias_
                a[absent] = -np.inf
                out[s:e] = _log_softmax(a, axis=1)
            else:
                out[s:e] = _log_softmax(x @ self.weights_.T + self.bias_, axis=1)
        return out

    def to_torch(self):
        """A torch.nn.Module computing the calibrated log-probabilities (float64 tensor ops)."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import DirichletModule

        return DirichletModule(self.weights_, self.bias_)

    def summary(self):
        k = self.weights_.shape[0]
        off = self.weights_ - np.diag(np.diag(self.weights_))
        return {"lambda": self.reg_lambda_, "mu": self.reg_mu_, "mean diag W": float(np.trace(self.weights_) / k),
                "max |off-diag W|": float(np.abs(off).max()), "max |b|": float(np.abs(self.bias_).max())}

