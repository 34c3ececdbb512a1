"""Non-parametric calibrators on class probabilities: isotonic, histogram binning, BBQ.

Each fits a map from p_j = softmax(z)_j to P(y = j | p_j). Binary problems (k = 2) fit
one map on class 1 and set p_0 = 1 - p_1. For k > 2 the maps are fitted one-vs-rest
and renormalised (Zadrozny & Elkan 2002; Guo et al. 2017). Every calibrated
one-vs-rest probability is first clipped to [min_prob, 1 - min_prob], so a row is never
all zeros (NaN after renormalising) and the NLL stays finite.
Absent options (-inf logits, probability 0): class j's map is fitted on the rows where
class j is present; predictions are 0 at absent options, the calibrated values
renormalised over the present ones.
All fitting is in float64 whatever the input dtype (scikit-learn's IsotonicRegression
fits float32 input in float32).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, logsumexp

from calibrate._core.binning import bin_index, equal_mass_edges, equal_width_edges
from calibrate._core.blocks import all_finite
from calibrate._core.validation import MAX_BINS, InputError, check_choice, check_n_bins
from calibrate.calibrators import _budget
from calibrate.calibrators._schema import Array, Bool, Choice, ListOf, Number, Record
from calibrate.calibrators.base import Calibrator, log_softmax64

_MIN_PROB = Number(gt=0, lt=0.5)
_EDGES = Array(("B+1",), ge=0, le=1, order="nondecreasing", first=0.0, last=1.0)
_VALUES = Array(("B",), ge=0, le=1)
_ALLOW_SLOW = Bool(nullable=True).optional()  # deprecated, no effect (see _budget.deprecated_allow_slow)


def _present(pj, tj, keep):
    """(p, t) float64 of the rows where the class is present (keep (n,) bool; None: all)."""
    if keep is not None and not keep.all():
        if not keep.any():  # absent everywhere: an identity map on two points
            return np.array([0.0, 1.0]), np.array([0.0, 1.0])
        pj, tj = pj[keep], tj[keep]
    return pj, tj.astype(np.float64)


class _OneVsRest(Calibrator):
    min_prob: float

    @classmethod
    def _state_dims(cls, n_classes):
        return {"k": n_classes, "c": 1 if n_classes == 2 else n_classes}

    def _fit(self, z, y):
        if not 0 < self.min_prob < 0.5:
            raise InputError(f"min_prob: expected a value in (0, 0.5), got {self.min_prob}")
        _budget.deprecated_allow_slow(self)
        p = np.exp(log_softmax64(z))
        classes = [1] if z.shape[1] == 2 else list(range(z.shape[1]))
        size = self._fit_size(*z.shape)
        long = _budget.announce(type(self).__name__, size)
        steps = self._map_steps(z.shape[0])
        bar = _budget.progress(long, len(classes) * steps, f"{self.name} fit", "step")
        try:
            present = None if all_finite(z) else ~np.isneginf(z)
            self.maps_ = [self._fit_map(*_present(p[:, j], y == j, None if present is None else present[:, j]),
                                        bar.update) for j in classes]
        finally:
            bar.close()

    def _fit_size(self, n, k):
        """The fit's size by calibrate.calibrators._budget's size rule (None: no rule)."""
        return None

    def _map_steps(self, n) -> int:
        """Progress steps of one map (``_fit_map`` calls its ``tick`` once per step)."""
        return 1

    def _log_proba(self, z):
        p = np.exp(log_softmax64(z))
        lo, hi = self.min_prob, 1.0 - self.min_prob
        if z.shape[1] == 2:
            q1 = np.clip(self._apply_map(self.maps_[0], p[:, 1]), lo, hi)
            return np.log(np.stack([1.0 - q1, q1], axis=1))
        q = np.empty_like(p)
        for j, m in enumerate(self.maps_):
            q[:, j] = self._apply_map(m, p[:, j])
        np.clip(q, lo, hi, out=q)
        return np.log(q / q.sum(axis=1, keepdims=True))

    def _fit_map(self, p, t, tick) -> dict:
        raise NotImplementedError

    def _apply_map(self, m: dict, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class IsotonicCalibration(_OneVsRest):
    """Isotonic regression (Zadrozny & Elkan 2002), scikit-learn's IsotonicRegression inside.

    The fitted step function is kept as its thresholds and applied by linear
    interpolation, clipped outside the fitted range: what IsotonicRegression.predict
    does with out_of_bounds="clip". Fitted: maps_, a list of {"x": (m,), "y": (m,)}.
    """

    name = "isotonic"
    param_schema = {"min_prob": _MIN_PROB, "allow_slow": _ALLOW_SLOW}
    # knots: x strictly increasing probabilities, y non-decreasing in [0, 1] (a monotone map)
    state_schema = {"maps_": ListOf(Record({"x": Array(("m",), ge=0, le=1, order="increasing", min_len=1),
                                            "y": Array(("m",), ge=0, le=1, order="nondecreasing")}),
                                    length="c")}

    def __init__(self, min_prob: float = 1e-6, allow_slow: bool | None = None):
        self.min_prob = min_prob
        self.allow_slow = allow_slow

    def _fit_size(self, n, k):
        return _budget.fit_size("isotonic", n, k)

    def _fit_map(self, p, t, tick):
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(p, t)
        tick()
        return {"x": np.asarray(iso.X_thresholds_, np.float64), "y": np.asarray(iso.y_thresholds_, np.float64)}

    def _apply_map(self, m, p):
        return np.interp(p, m["x"], m["y"])

    def to_torch(self):
        """A torch.nn.Module: the maps by torch.searchsorted and linear interpolation (float64)."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import IsotonicModule

        return IsotonicModule(self.maps_, self.min_prob)


class HistogramBinning(_OneVsRest):
    """Histogram binning (Zadrozny & Elkan 2001): p_j -> the frequency of class j in its bin.

    Bins follow the package's one rule (calibrate._core.binning); binning "width" (equal
    width on [0, 1]) or "mass" (equal count). An empty bin maps to its midpoint.
    Fitted: maps_, a list of {"edges": (B + 1,), "values": (B,)}.
    """

    name = "histogram"
    param_schema = {"n_bins": Number(integer=True, ge=1, le=MAX_BINS), "binning": Choice("width", "mass"),
                    "min_prob": _MIN_PROB}
    state_schema = {"maps_": ListOf(Record({"edges": _EDGES, "values": _VALUES}), length="c")}

    def __init__(self, n_bins: int = 15, binning: str = "width", min_prob: float = 1e-6):
        self.n_bins = n_bins
        self.binning = binning
        self.min_prob = min_prob

    def _fit_map(self, p, t, tick):
        n_bins = check_n_bins(self.n_bins)
        check_choice(self.binning, "binning", ("width", "mass"))
        edges = equal_width_edges(n_bins) if self.binning == "width" else equal_mass_edges(p, n_bins)
        idx = bin_index(p, edges)
        count = np.bincount(idx, minlength=n_bins)
        hits = np.bincount(idx, weights=t, minlength=n_bins)
        mid = (edges[:-1] + edges[1:]) / 2
        values = np.where(count > 0, hits / np.maximum(count, 1), mid)
        tick()
        return {"edges": edges, "values": values}

    def _apply_map(self, m, p):
        return m["values"][bin_index(p, m["edges"])]

    def to_torch(self):
        """A torch.nn.Module: the bins by torch.searchsorted, their values by gather (float64)."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import BinnedModule

        return BinnedModule([([(m["edges"], m["values"])], [1.0]) for m in self.maps_], self.min_prob)


class BBQ(_OneVsRest):
    """Bayesian binning into quantiles (Naeini, Cooper & Hauskrecht 2015).

    Averages equal-frequency histogram models with B = floor(N^(1/3) / C) .. ceil(C N^(1/3))
    bins (C = 10, at least 1 and at most N), each weighted by its Bayesian score: a uniform
    prior over models times the marginal likelihood with a Beta(alpha_b, beta_b) prior in
    each bin, alpha_b = N' / B * m_b, beta_b = N' / B * (1 - m_b), m_b the midpoint of
    bin b, N' = 2. A bin predicts its posterior mean (k_b + alpha_b) / (n_b + N' / B).
    Models whose weight is below ``prune`` times the largest are dropped and the rest
    renormalised (a change of at most ``prune`` times the number of models in any
    prediction).
    Fitted: maps_, a list of {"models": [{"edges", "values"}...], "weights": (M,)}.
    """

    name = "bbq"
    param_schema = {"ess": Number(gt=0), "c": Number(gt=0), "prune": Number(ge=0, lt=1), "min_prob": _MIN_PROB,
                    "allow_slow": _ALLOW_SLOW}
    state_schema = {"maps_": ListOf(Record({
        "models": ListOf(Record({"edges": _EDGES, "values": _VALUES}), length="M", min_len=1),
        "weights": Array(("M",), ge=0, le=1, total=1.0)}), length="c")}

    def __init__(self, ess: float = 2.0, c: float = 10.0, prune: float = 1e-9, min_prob: float = 1e-6,
                 allow_slow: bool | None = None):
        self.ess = ess
        self.c = c
        self.prune = prune
        self.min_prob = min_prob
        self.allow_slow = allow_slow

    def _model_range(self, n):
        return _budget.bbq_model_range(n, self.c)

    def _fit_size(self, n, k):
        return _budget.fit_size("bbq", n, k, self.c)

    def _map_steps(self, n):
        b_min, b_max = self._model_range(n)
        return b_max - b_min + 1

    def _fit_map(self, p, t, tick):
        n = p.size
        b_min, b_max = self._model_range(n)
        models, scores = [], []
        for n_bins in range(b_min, b_max + 1):
            edges = equal_mass_edges(p, n_bins)
            idx = bin_index(p, edges)
            count = np.bincount(idx, minlength=n_bins)
            hits = np.bincount(idx, weights=t, minlength=n_bins)
            mid = np.clip((edges[:-1] + edges[1:]) / 2, 1e-6, 1 - 1e-6)
            prior = self.ess / n_bins
            alpha, beta = prior * mid, prior * (1.0 - mid)
            score = np.sum(
                gammaln(prior) - gammaln(count + prior)
                + gammaln(hits + alpha) - gammaln(alpha)
                + gammaln(count - hits + beta) - gammaln(beta)
            )
            models.append({"edges": edges, "values": (hits + alpha) / (count + prior)})
            scores.append(score)
            tick()
        scores = np.array(scores)
        w = np.exp(scores - logsumexp(scores))
        keep = w >= self.prune * w.max()
        w = w[keep] / w[keep].sum()
        return {"models": [m for m, k in zip(models, keep) if k], "weights": w}

    def _apply_map(self, m, p):
        out = np.zeros_like(p)
        for model, w in zip(m["models"], m["weights"]):
            out += w * model["values"][bin_index(p, model["edges"])]
        return out

    def to_torch(self):
        """A torch.nn.Module: every model's bins by torch.searchsorted, the weighted sum of
        their values (float64)."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import BinnedModule

        return BinnedModule([([(md["edges"], md["values"]) for md in m["models"]], m["weights"])
                             for m in self.maps_], self.min_prob)

    def summary(self):
        n_models = [len(m["models"]) for m in self.maps_]
        return {"models kept (mean)": float(np.mean(n_models))}
