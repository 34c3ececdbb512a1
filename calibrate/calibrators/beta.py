"""Beta calibration (Kull, Silva Filho & Flach 2017, AISTATS) for binary scores.

With p the score of class 1 (softmax of 2-class logits, or a given probability):

    "abm":  logit(q) = a ln p - b ln(1 - p) + c,   a, b >= 0      (3 parameters)
    "ab":   the same with m = 1/2 fixed, where m solves q(m) = 1/2:
            logit(q) = a ln(2p) - b ln(2(1 - p))  (c = (a - b) ln 2)
    "am":   a = b: logit(q) = a ln(p / (1 - p)) + c  (logistic calibration on the
            log-odds; m = 1 / (1 + exp(c / a)))

the parameterisations of the betacal package. Each is a logistic regression on the
features (ln p, -ln(1 - p)), fitted here to its optimum by Newton's method in float64
(betacal runs scikit-learn's LogisticRegression with C = 1e11 and its default
tolerance). For "abm" the constraint a, b >= 0 is handled as betacal does: when the
fitted a is negative the fit is redone without the ln p feature (a = 0), else when b is
negative without -ln(1 - p) (b = 0). "ab" and "am" are unconstrained, as in betacal.
A ridge of ``reg`` (1e-12 by default, per mean log-loss unit) on every coefficient
keeps the fit finite on separable data or when one class is absent; elsewhere it
moves the NLL by far less than 1e-9.

k > 2 classes: one-vs-rest (class j against the rest, p = softmax(z)_j, with ln p_j and
ln(1 - p_j) computed from the logits without cancellation), then the k calibrated
probabilities are renormalised to sum to 1, in log space, as PlattScaling does. This is
the usual way to apply a binary calibrator to k classes (Zadrozny & Elkan 2002);
Dirichlet calibration is the native multiclass generalisation of beta calibration.

Absent options (-inf logits): class j's map is fitted on the rows where class j is
present beside another option; predictions are 0 at absent options, renormalised over
the present ones (a row's only present option gets 1).

Input: logits (n, k) or binary scores (n,) as everywhere (``scores="logits"``), or
probabilities with ``scores="probs"``: (n,) P(class 1) or (n, k) rows; these are
clipped to [eps, 1 - eps] (float64 eps) before the logarithms, as betacal clips.
"""

from __future__ import annotations

import math

import numpy as np

from calibrate._core.validation import InputError, check_choice, check_scores
from calibrate.calibrators._schema import Array, Choice, Number
from calibrate.calibrators.base import Calibrator, log_softmax64, one_vs_rest_log_odds

_EPS = np.finfo(np.float64).eps
_LN2 = math.log(2.0)


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def fit_logistic(x: np.ndarray, t: np.ndarray, reg: float = 1e-12, tol: float = 1e-12, max_iter: int = 200):
    """Coefficients w minimising mean_i [log(1 + e^{x_i w}) - t_i x_i w] + reg/2 |w|^2.

    x: (n, d) float64 features (include a column of ones for an intercept); t: (n,) 0/1.
    Newton's method with Armijo backtracking; converges to max |grad| <= tol.
    """
    n, d = x.shape
    w = np.zeros(d)

    def obj(w):
        eta = x @ w
        return float(np.mean(np.logaddexp(0.0, eta) - t * eta) + 0.5 * reg * w @ w), eta

    f, eta = obj(w)
    for _ in range(max_iter):
        p = np.exp(_log_sigmoid(eta))
        g = x.T @ (p - t) / n + reg * w
        if np.abs(g).max() <= tol:
            break
        h = (x * (p * (1 - p))[:, None]).T @ x / n + reg * np.eye(d)
        step = np.linalg.lstsq(h, -g, rcond=None)[0]
        slope = float(g @ step)
        if not slope < 0:
            step, slope = -g, -float(g @ g)
        s = 1.0
        for _ in range(60):
            fc, ec = obj(w + s * step)
            if fc <= f + 1e-4 * s * slope:
                break
            s *= 0.5
        else:
            break  # at machine precision
        w, f, eta = w + s * step, fc, ec
    return w


def fit_beta(lp: np.ndarray, l1p: np.ndarray, t: np.ndarray, parameters: str, reg: float):
    """(a, b, c) of logit(q) = a ln p - b ln(1 - p) + c, from ln p (n,) and ln(1 - p) (n,)."""
    ones = np.ones_like(lp)
    if parameters == "am":
        a, c = fit_logistic(np.stack([lp - l1p, ones], 1), t, reg)
        return float(a), float(a), float(c)
    if parameters == "ab":
        a, nb = fit_logistic(np.stack([lp + _LN2, l1p + _LN2], 1), t, reg)
        return float(a), float(-nb), float((a + nb) * _LN2)
    a, b, c = fit_logistic(np.stack([lp, -l1p, ones], 1), t, reg)
    if a < 0:
        b, c = fit_logistic(np.stack([-l1p, ones], 1), t, reg)
        a = 0.0
    elif b < 0:
        a, c = fit_logistic(np.stack([lp, ones], 1), t, reg)
        b = 0.0
    return float(a), float(b), float(c)


class BetaCalibration(Calibrator):
    """Beta calibration, logit(q) = a ln p - b ln(1 - p) + c (Kull et al. 2017).

    parameters: "abm" (default), "ab" or "am" (see the module docstring).
    scores: "logits" (default) or "probs" (what ``fit`` and ``predict_proba`` receive).
    reg: ridge on the coefficients (keeps separable fits finite).
    Fitted: a_, b_, c_ of shape (1,) for k = 2 (class 1) or (k,) one-vs-rest.
    """

    name = "beta"
    param_schema = {"parameters": Choice("abm", "ab", "am"), "scores": Choice("logits", "probs"),
                    "reg": Number(gt=0)}
    state_schema = {"a_": Array(("c",)), "b_": Array(("c",)), "c_": Array(("c",))}

    @classmethod
    def _state_dims(cls, n_classes):
        return {"k": n_classes, "c": 1 if n_classes == 2 else n_classes}

    def __init__(self, parameters: str = "abm", scores: str = "logits", reg: float = 1e-12):
        self.parameters = parameters
        self.scores = scores
        self.reg = reg

    def _as_logits(self, x):
        check_choice(self.scores, "scores", ("logits", "probs"))
        if self.scores == "logits":
            return x
        p = check_scores(x, "probs", kind="probs").astype(np.float64)
        return np.log(np.clip(p, _EPS, 1.0 - _EPS))

    def fit(self, logits, labels, *, kind: str | None = None):
        """Fit on logits (n, k) or (n,) (or probabilities with scores="probs") and labels (n,)."""
        check_choice(self.scores, "scores", ("logits", "probs"))
        if self.scores == "probs":
            return super().fit(self._as_logits(logits), labels, kind="logits")
        return super().fit(logits, labels, kind=kind)

    def predict_log_proba(self, logits, *, kind: str | None = None) -> np.ndarray:
        if self.scores == "probs":
            return super().predict_log_proba(self._as_logits(logits), kind="logits")
        return super().predict_log_proba(logits, kind=kind)

    @staticmethod
    def _features(z):
        """(ln p_j, ln(1 - p_j)) (n, k); both 0 where one is not finite (an absent option, or
        a row's only present option: those entries are masked by the caller)."""
        lp = log_softmax64(z)
        with np.errstate(invalid="ignore"):
            l1p = lp - one_vs_rest_log_odds(z)  # ln p_j, ln(1 - p_j)
        bad = ~(np.isfinite(lp) & np.isfinite(l1p))
        if bad.any():
            lp[bad] = 0.0
            l1p[bad] = 0.0
            return lp, l1p, ~bad
        return lp, l1p, None

    def _fit(self, z, y):
        check_choice(self.parameters, "parameters", ("abm", "ab", "am"))
        if not (np.isfinite(self.reg) and self.reg > 0):
            raise InputError(f"reg: expected a finite value > 0, got {self.reg!r}")
        lp, l1p, ok = self._features(z)
        classes = [1] if z.shape[1] == 2 else range(z.shape[1])
        abc = []
        for j in classes:
            r = slice(None) if ok is None or ok[:, j].all() else ok[:, j]  # rows where class j is present
            if ok is not None and not ok[:, j].any():
                abc.append((1.0, 1.0, 0.0))  # never present beside another option: the identity map
                continue
            abc.append(fit_beta(lp[r, j], l1p[r, j], (y[r] == j).astype(np.float64), self.parameters, self.reg))
        self.a_, self.b_, self.c_ = (np.array(v) for v in zip(*abc))

    def _log_proba(self, z):
        lp, l1p, _ = self._features(z)
        if z.shape[1] == 2:
            eta = self.a_[0] * lp[:, 1] - self.b_[0] * l1p[:, 1] + self.c_[0]
            return np.stack([_log_sigmoid(-eta), _log_sigmoid(eta)], axis=1)
        return log_softmax64(_log_sigmoid(self.a_ * lp - self.b_ * l1p + self.c_))

    def to_torch(self):
        """A torch.nn.Module computing the calibrated log-probabilities (float64 tensor ops);
        with scores="probs" it takes probabilities (n, k), as predict_proba does."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import BetaModule

        return BetaModule(self.a_, self.b_, self.c_, probs=self.scores == "probs")

    @property
    def m_(self) -> np.ndarray:
        """The score m with q(m) = 1/2 for each fitted map (NaN when q never crosses 1/2)."""
        from scipy.optimize import brentq

        if self.parameters == "ab":
            return np.full(self.a_.shape, 0.5)
        if self.parameters == "am":
            with np.errstate(divide="ignore", over="ignore"):
                return 1.0 / (1.0 + np.exp(self.c_ / self.a_))
        out = []
        for a, b, c in zip(self.a_, self.b_, self.c_):
            def eta(m, a=a, b=b, c=c):
                return a * math.log(m) - b * math.log1p(-m) + c
            lo, hi = 1e-300, 1 - 1e-16
            out.append(brentq(eta, lo, hi, xtol=1e-15) if eta(lo) * eta(hi) < 0 else float("nan"))
        return np.array(out)

    def summary(self):
        if self.a_.size == 1:
            return {"a": float(self.a_[0]), "b": float(self.b_[0]), "c": float(self.c_[0])}
        return {"mean a": float(self.a_.mean()), "mean b": float(self.b_.mean()), "mean c": float(self.c_.mean())}

