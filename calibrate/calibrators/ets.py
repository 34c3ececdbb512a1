"""Ensemble temperature scaling (Zhang, Kailkhura & Han 2020, "Mix-n-Match", ICML).

    q = w_1 softmax(z / T) + w_2 softmax(z) + w_3 (1/k),   w on the simplex,

a mixture of the temperature-scaled, the uncalibrated and the uniform prediction. As
in the paper's code, T is fitted first (temperature scaling under the same loss), then
the weights with T fixed. loss: "mse" (the paper's default: the Brier score
mean_i sum_j (q_ij - 1[y_i = j])^2) or "nll".

Both weight problems are convex on the 2-simplex and need only small statistics:
the MSE is a quadratic form in w (a 3 x 3 Gram matrix and a 3-vector, summed in row
blocks), solved exactly by enumerating its KKT candidates (interior, each edge, each
vertex); the NLL needs the three probabilities of the true class per row and is
minimised by Newton's method on the simplex's faces (the same enumeration: the convex
minimum on the triangle is the best of the interior/edge/vertex minimisers that are
feasible). T: for "nll" the exact NLL optimum (:func:`fit_temperature_nll`); for "mse"
the Brier-optimal T in ``bounds``, by a log-spaced grid refined by a bounded scalar search.
Absent options (-inf logits): every component is 0 there, the uniform one is 1/k_i over
row i's k_i present options.
"""

from __future__ import annotations

import math

import numpy as np

from calibrate._core.validation import InputError, check_choice
from calibrate.calibrators._schema import Array, Choice, Number, Seq
from calibrate.calibrators.base import Calibrator, log_softmax64
from calibrate.calibrators.temperature_solver import (
    _blocks,
    _fit_temperature_search,
    _nll_at,
    fit_temperature_brier,
    fit_temperature_nll,
)


def _components(z, t, s, e):
    """(3, rows, k) probabilities: softmax(z / T), softmax(z), uniform (over each row's
    present options: 0 where a logit is -inf)."""
    zz = z[s:e]
    k = z.shape[1]
    present = ~np.isneginf(zz)
    if present.all():
        uniform = np.full((e - s, k), 1.0 / k)
    else:
        uniform = present / present.sum(axis=1, keepdims=True)
    return np.exp(log_softmax64(zz / t)), np.exp(log_softmax64(zz)), uniform


def _simplex_candidates():
    """Supports of the faces of the 2-simplex: the interior, 3 edges, 3 vertices."""
    return [(0, 1, 2), (0, 1), (0, 2), (1, 2), (0,), (1,), (2,)]


def _solve_face_mse(g, c, face):
    """Minimise w^T G w - 2 c^T w over {w >= 0 on face, 0 elsewhere, sum w = 1} (None if infeasible)."""
    f = list(face)
    m = len(f)
    # KKT of the equality-constrained quadratic: [2G 1; 1^T 0] [w; nu] = [2c; 1]
    a = np.zeros((m + 1, m + 1))
    a[:m, :m] = 2 * g[np.ix_(f, f)]
    a[:m, m] = 1.0
    a[m, :m] = 1.0
    rhs = np.concatenate([2 * c[f], [1.0]])
    sol = np.linalg.lstsq(a, rhs, rcond=None)[0]
    w = np.zeros(3)
    w[f] = sol[:m]
    return w if np.all(w >= -1e-12) else None


def fit_weights_mse(g: np.ndarray, c: np.ndarray, const: float):
    """Simplex weights minimising the Brier score const - 2 c^T w + w^T G w; returns (w, value)."""
    best = None
    for face in _simplex_candidates():
        w = _solve_face_mse(g, c, face)
        if w is None:
            continue
        w = np.clip(w, 0.0, None)
        w /= w.sum()
        v = float(const - 2 * c @ w + w @ g @ w)
        if best is None or v < best[1]:
            best = (w, v)
    return best


def _nll_face(q, face, max_iter=100):
    """Minimiser of -mean log(q w) on the face's affine hull (Newton in the free coordinates);
    None when it lies outside the face (a smaller face then holds the simplex minimiser)."""
    f = list(face)
    m = len(f)
    if m == 1:
        w = np.zeros(3)
        w[f[0]] = 1.0
        return w
    # w_f = base + basis @ u, u in R^{m-1}; sum stays 1
    basis = np.zeros((m, m - 1))
    basis[: m - 1] = np.eye(m - 1)
    basis[m - 1] = -1.0
    qf = q[:, f]
    u = np.full(m - 1, 1.0 / m)

    def wf(u):
        return np.concatenate([u, [1.0 - u.sum()]])

    def obj(u):
        v = qf @ wf(u)
        return (-np.mean(np.log(v)) if np.all(v > 0) else np.inf), v

    val, v = obj(u)
    for _ in range(max_iter):
        r = qf / v[:, None]
        gr = -(r.mean(axis=0)) @ basis
        if np.abs(gr).max() <= 1e-13:
            break
        rb = r @ basis
        h = rb.T @ rb / q.shape[0]
        step = np.linalg.lstsq(h, -gr, rcond=None)[0]
        s = 1.0
        for _ in range(60):
            cand = u + s * step
            cv, cvv = obj(cand)
            if cv <= val + 1e-4 * s * float(gr @ step):
                break
            s *= 0.5
        else:
            break
        u, val, v = cand, cv, cvv
    w = np.zeros(3)
    w[f] = wf(u)
    return w if np.all(w >= 0) else None


def fit_weights_nll(q: np.ndarray):
    """Simplex weights minimising -mean_i log(q_i . w); q: (n, 3) probabilities of the true class."""
    best = None
    for face in _simplex_candidates():
        w = _nll_face(q, face)
        if w is None:
            continue
        v = q @ w
        if np.any(v <= 0):
            continue
        val = float(-np.mean(np.log(v)))
        if best is None or val < best[1]:
            best = (w, val)
    return best


class EnsembleTemperatureScaling(Calibrator):
    """q = w_1 softmax(z/T) + w_2 softmax(z) + w_3/k, w on the simplex (Zhang et al. 2020).

    loss: "mse" (default, as the paper's code) or "nll"; bounds: the range of T.
    Fitted: temperature_, weights_ (3,) [T-scaled, uncalibrated, uniform], loss_value_
    (the fitted loss on the fitting data).
    """

    name = "ets"
    param_schema = {"loss": Choice("mse", "nll"), "bounds": Seq(Number(gt=0), 2, increasing=True)}
    state_schema = {"temperature_": Number(gt=0), "weights_": Array((3,), ge=0, le=1, total=1.0),
                    "loss_value_": Number(finite=False)}

    def __init__(self, loss: str = "mse", bounds: tuple = (0.05, 100.0)):
        self.loss = loss
        self.bounds = bounds

    def _fit(self, z, y):
        check_choice(self.loss, "loss", ("mse", "nll"))
        lo, hi = (float(b) for b in self.bounds)
        if not 0 < lo < hi:
            raise InputError(f"bounds: expected 0 < low < high, got {self.bounds!r}")
        n, k = z.shape
        if self.loss == "nll":
            try:
                t, _ = fit_temperature_nll(z, y, (lo, hi))
            except RuntimeError:
                # fit_temperature_nll's Newton crawls when the optimum is at a bound on
                # separable data (NLL ~ exp(-m / T)); the convex 1-d problem is then solved
                # by the bounded search used for the Brier score
                t = _fit_temperature_search(z, y, (lo, hi), _nll_at)
        else:
            t = fit_temperature_brier(z, y, (lo, hi))
        gram = np.zeros((3, 3))
        cvec = np.zeros(3)
        q = np.empty((n, 3))
        for s, e in _blocks(n, k):
            comps = _components(z, t, s, e)
            r = np.arange(e - s)
            for i in range(3):
                q[s:e, i] = comps[i][r, y[s:e]]
                for j in range(i, 3):
                    gram[i, j] += float(np.einsum("ij,ij->", comps[i], comps[j]))
        gram = np.triu(gram) + np.triu(gram, 1).T
        gram /= n
        cvec[:] = q.mean(axis=0)
        if self.loss == "mse":
            w, val = fit_weights_mse(gram, cvec, 1.0)
        else:
            w, val = fit_weights_nll(q)
        self.temperature_ = float(t)
        self.weights_ = w
        self.loss_value_ = float(val)

    def _log_proba(self, z):
        k = z.shape[1]
        with np.errstate(divide="ignore"):
            lw = np.log(self.weights_)
        a = lw[0] + log_softmax64(z / self.temperature_)
        b = lw[1] + log_softmax64(z)
        out = np.logaddexp(a, b)
        present = ~np.isneginf(z)
        if present.all():
            return np.logaddexp(out, lw[2] - math.log(k))
        with np.errstate(divide="ignore"):
            lu = lw[2] - np.log(present.sum(axis=1, keepdims=True))
        return np.logaddexp(out, np.where(present, lu, -np.inf))

    def to_torch(self):
        """A torch.nn.Module computing the calibrated log-probabilities with the ensemble
        weights (float64 tensor ops)."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import EnsembleTemperatureModule

        return EnsembleTemperatureModule(self.temperature_, self.weights_)

    def summary(self):
        return {"T": self.temperature_, "w_T": float(self.weights_[0]), "w_1": float(self.weights_[1]),
                "w_uniform": float(self.weights_[2])}

