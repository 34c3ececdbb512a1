"""Split conformal prediction sets from logits, and their coverage metrics.

    cp = APS(alpha=0.1, seed=0).fit(cal_logits, cal_labels)
    sets = cp.predict_sets(test_logits)          # (n, k) bool
    marginal_coverage(sets, test_labels)         # >= 0.9 on average over splits
    cp.save("aps.json"); cp = load("aps.json")   # the same sets

The predictors are scikit-learn estimators: ``alpha`` and the other hyperparameters are
constructor arguments (``get_params``, ``set_params`` and ``sklearn.base.clone`` work), and
``fit(cal_logits, cal_labels)`` sets the attributes ending in ``_``. Their JSON files are
checked against a declared schema (:mod:`calibrate.calibrators._schema`) when loaded.

A conformity score s(x, y) is computed on every calibration row for its true label;
the threshold q is the r-th smallest of those n scores with r = ceil((n + 1)(1 - alpha))
(exactly; alpha is read as the decimal it prints as, so 0.1 means 1/10). A test row's
set is {y : s(x, y) <= q}. For exchangeable calibration and test rows,
P(y in set) >= 1 - alpha (Vovk et al. 2005; Lei et al. 2018); for continuous scores
(no ties) also <= 1 - alpha + 1 / (n + 1). If r > n (alpha < 1 / (n + 1)) no finite q
gives the guarantee: q = +inf, every set is full, and a ``ConformalWarning`` says so.

Scores, with p = softmax(logits) in float64 and classes ranked by decreasing p (ties
broken by the lower class index), o(x, y) the 1-based rank of y and u ~ U[0, 1) drawn
once per row:
  LAC  (Sadinle et al. 2019)          s = 1 - p_y
  APS  (Romano et al. 2020)           s = sum_{o(j) < o(y)} p_j + u p_y
                                      (u = 1 when randomized=False: the mass up to y)
  RAPS (Angelopoulos et al. 2021)     APS + lam * max(0, o(x, y) - k_reg)
Absent options (-inf logits, p_j = 0) are never in a set (they could pass only when
q >= 1, e.g. q = +inf); otherwise the sets equal those of the probabilities with those
entries 0. A calibration row whose label is absent is refused.
Sets may be empty (LAC when no p_j >= 1 - q; APS when u p_(1) > q). The sets are
exactly {y : s <= q}, the same rule on calibration and test rows, hence the two-sided
bound above. LAC sets equal MAPIE's "lac" (tested). MAPIE's "aps"/"raps" differ: they
keep the class that crosses q ("include_last_label") and calibrate a different score,
so their sets are larger and not compared here.

mondrian=True: one threshold per class, from the calibration rows of that class
(Vovk 2012; class-conditional coverage >= 1 - alpha for every class). A class with
fewer than ceil(1 / alpha) - 1 calibration rows gets q = +inf (always in the set).

Randomness: ``seed`` (int or None) seeds the u's. ``fit`` and ``predict_sets``
use two independent streams spawned from it, and predict_sets restarts its stream on
every call (the same logits give the same sets). With None, a seed is drawn at fit
and kept as ``seed_``, so the fitted object (and its JSON) is reproducible.
"""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction

import numpy as np
from sklearn.base import BaseEstimator

from calibrate._core.blocks import log_softmax64, row_blocks
from calibrate._core.validation import (
    InputError,
    check_labels,
    check_logits_labels,
    check_scores,
    renamed_keywords,
    to_numpy,
)
from calibrate.calibrators._schema import (
    Bool,
    ListOf,
    Loc,
    Number,
    check_envelope,
    check_parts,
    decode_fields,
    encode,
)
from calibrate.calibrators.base import MAX_CLASSES, NotFittedError

FORMAT = "calibrate.conformal"
FORMAT_VERSION = 2  # 2: alpha and seed are hyperparameters, the state encoded as the calibrators' files


class ConformalWarning(UserWarning):
    """alpha is too small for the number of calibration rows: some sets are full."""


def conformal_rank(n: int, alpha: float) -> int:
    """r = ceil((n + 1)(1 - alpha)), computed exactly (alpha as the decimal it prints as)."""
    a = Fraction(repr(float(alpha)))
    return math.ceil((n + 1) * (1 - a))


def min_rows(alpha: float) -> int:
    """The fewest calibration rows n with ceil((n + 1)(1 - alpha)) <= n: ceil(1 / alpha - 1)."""
    a = Fraction(repr(float(alpha)))
    return max(1, math.ceil(1 / a - 1))


def conformal_quantile(scores, alpha: float) -> float:
    """The r-th smallest of the (n,) scores, r = ceil((n + 1)(1 - alpha)); +inf if r > n."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    r = conformal_rank(s.size, alpha)
    return float(s[r - 1]) if r <= s.size else math.inf


def _check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"alpha: expected a number in (0, 1), got {alpha!r}") from None
    if not 0.0 < a < 1.0:
        raise InputError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    return a


_UNSET = object()
_TOP_LEVEL = ("format", "version", "class", "params", "state")


class _SplitConformal(BaseEstimator):
    """Base class: subclasses define ``_all_scores(p, u) -> (b, k)`` scores of every class.

    A scikit-learn estimator: the constructor's arguments are the hyperparameters, stored
    unchanged (``get_params`` / ``set_params`` / ``sklearn.base.clone`` work); ``fit`` sets
    the attributes ending in ``_``. ``param_schema`` declares what a saved file's "params"
    may hold (:mod:`calibrate.calibrators._schema`); the state's schema follows from it.
    """

    name = ""
    randomized = False
    param_schema = {"alpha": Number(gt=0, lt=1), "mondrian": Bool()}

    def __init__(self, mondrian: bool = False, alpha: float = 0.1):
        self.mondrian = mondrian
        self.alpha = alpha

    # ------------------------------------------------------------------ scores
    def _uses_u(self) -> bool:
        return bool(getattr(self, "randomized", False))

    def _streams(self):
        return np.random.SeedSequence(self.seed_).spawn(2)

    def _scores_blocks(self, z: np.ndarray, rng):
        """Yield (start, (b, k) scores of every class) in blocks of rows."""
        for s in row_blocks(*z.shape):
            p = np.exp(log_softmax64(z[s]))
            u = rng.random(p.shape[0]) if (rng is not None and self._uses_u()) else None
            yield s.start, self._all_scores(p, u)

    # ------------------------------------------------------------------ public API
    def fit(self, cal_logits, cal_labels, alpha=_UNSET):
        """Calibrate on logits (n, k) float and labels (n,) int for miscoverage ``self.alpha``.

        Sets ``alpha_``, ``n_classes_``, ``n_calibration_``, ``seed_`` and ``quantile_``
        (a float, or (k,) per class when mondrian=True; +inf means full sets). Returns self.
        alpha: deprecated (give it to the constructor); when given it replaces ``self.alpha``,
        with a DeprecationWarning.
        """
        if alpha is not _UNSET:
            warnings.warn(f"{type(self).__name__}.fit(cal_logits, cal_labels, alpha): alpha is now a constructor "
                          f"parameter ({type(self).__name__}(alpha={alpha!r}).fit(cal_logits, cal_labels)); "
                          "fit's alpha will be removed in the next release", DeprecationWarning, stacklevel=2)
            self.alpha = alpha
        a = _check_alpha(self.alpha)
        z, y = check_logits_labels(cal_logits, cal_labels, "cal_logits", "cal_labels")
        if not isinstance(self.mondrian, (bool, np.bool_)):
            raise InputError(f"mondrian: expected True or False, got {self.mondrian!r}")
        self._check_params()
        seed = getattr(self, "seed", None)
        if seed is not None:
            self.seed_ = int(seed)
        else:  # a fresh seed, kept so that the fitted object is reproducible
            self.seed_ = int(np.random.SeedSequence().entropy % (2**63)) if self._uses_u() else 0
        rng = np.random.default_rng(self._streams()[0])
        true_scores = np.empty(z.shape[0])
        for s, sc in self._scores_blocks(z, rng):
            true_scores[s : s + sc.shape[0]] = sc[np.arange(sc.shape[0]), y[s : s + sc.shape[0]]]
        k = z.shape[1]
        if self.mondrian:
            q = np.array([conformal_quantile(true_scores[y == j], a) for j in range(k)])
            full = np.flatnonzero(np.isinf(q))
            if full.size:
                warnings.warn(
                    f"alpha={a:g}: {full.size} of {k} classes have fewer than {min_rows(a)} "
                    f"calibration rows (ceil((n_j + 1)(1 - alpha)) > n_j): their threshold is "
                    f"+inf (always in the set): classes {full[:10].tolist()}",
                    ConformalWarning,
                    stacklevel=2,
                )
            self.quantile_ = q
        else:
            q = conformal_quantile(true_scores, a)
            if math.isinf(q):
                warnings.warn(
                    f"alpha={a:g} is too small for {z.shape[0]} calibration rows "
                    f"(ceil((n + 1)(1 - alpha)) = {conformal_rank(z.shape[0], a)} > n): "
                    "every prediction set is full",
                    ConformalWarning,
                    stacklevel=2,
                )
            self.quantile_ = q
        self.alpha_ = a
        self.n_classes_ = int(k)
        self.n_calibration_ = int(z.shape[0])
        return self

    def predict_sets(self, logits) -> np.ndarray:
        """(n, k) bool prediction sets for logits (n, k): set[i, j] = s(x_i, j) <= q."""
        self._check_fitted()
        z = check_scores(logits, "logits", kind="logits")
        if z.shape[1] != self.n_classes_:
            raise InputError(f"logits: fitted on {self.n_classes_} classes, got {z.shape[1]}")
        rng = np.random.default_rng(self._streams()[1])
        q = np.asarray(self.quantile_, dtype=np.float64)
        out = np.empty(z.shape, dtype=bool)
        for s, sc in self._scores_blocks(z, rng):
            rows = slice(s, s + sc.shape[0])
            out[rows] = sc <= q
            out[rows] &= ~np.isneginf(z[rows])  # absent options: never in a set
        return out

    def conformity_scores(self, logits, labels) -> np.ndarray:
        """(n,) scores s(x_i, y_i) (with the fit stream of u's, as used by ``fit``)."""
        self._check_fitted()
        z, y = check_logits_labels(logits, labels)
        rng = np.random.default_rng(self._streams()[0])
        out = np.empty(z.shape[0])
        for s, sc in self._scores_blocks(z, rng):
            out[s : s + sc.shape[0]] = sc[np.arange(sc.shape[0]), y[s : s + sc.shape[0]]]
        return out

    # ------------------------------------------------------------------ state
    def _check_params(self):
        pass

    def is_fitted(self) -> bool:
        return hasattr(self, "quantile_")

    def __sklearn_is_fitted__(self) -> bool:  # read by sklearn.utils.validation.check_is_fitted
        return self.is_fitted()

    def _check_fitted(self):
        if not self.is_fitted():
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet: call fit(cal_logits, cal_labels) first"
            )

    def __repr__(self, N_CHAR_MAX=700):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def _state_schema(cls, mondrian: bool) -> dict:
        """What a saved file's "state" holds; the thresholds are a list of k with mondrian=True
        (each a number or {"__float__": "inf"})."""
        q = ListOf(Number(finite=False), length="k") if mondrian else Number(finite=False)
        return {"alpha_": Number(gt=0, lt=1), "n_classes_": Number(integer=True, ge=1, le=MAX_CLASSES),
                "n_calibration_": Number(integer=True, ge=1), "seed_": Number(integer=True, ge=0, lt=2**63),
                "quantile_": q}

    def to_dict(self) -> dict:
        """JSON-ready dict: the class, its hyperparameters and its fitted state, encoded as the
        calibrators' files are (arrays as {"__ndarray__": ...}, +inf as {"__float__": "inf"})."""
        self._check_fitted()
        state = {"alpha_": self.alpha_, "n_classes_": self.n_classes_, "n_calibration_": self.n_calibration_,
                 "seed_": self.seed_, "quantile_": np.asarray(self.quantile_, dtype=np.float64).tolist()}
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "class": type(self).__name__,
            "params": encode(self.get_params(deep=False)),
            "state": encode(state),
        }

    def to_json(self) -> str:
        """The file ``save`` writes: JSON text."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    def save(self, path) -> None:
        """Write the fitted predictor as JSON (atomically), like the calibrators."""
        from calibrate.io.readers import atomic_write_text

        atomic_write_text(path, self.to_json())

    @staticmethod
    def from_dict(d: dict, source: str = "conformal") -> _SplitConformal:
        """A fitted predictor from :meth:`to_dict` output, checked against the declared schemas
        before any attribute is set (InputError naming ``source`` and the field otherwise)."""
        check_envelope(d, source, fmt=FORMAT, versions=(1, FORMAT_VERSION), fields=_TOP_LEVEL, what="conformal",
                       writer="a conformal predictor's save")
        klass = _CLASSES.get(d.get("class")) if isinstance(d.get("class"), str) else None
        if klass is None:
            raise InputError(f"{source}: field 'class': unknown class {d.get('class')!r}; expected one of "
                             f"{', '.join(_CLASSES)}")
        check_parts(d, source)
        if d["version"] == 1:
            d = _upgrade_v1(d)
        where = Loc(source)
        params = decode_fields(klass.param_schema, d["params"], where.key("params"), {})
        k = Number(integer=True, ge=1, le=MAX_CLASSES).decode(d["state"].get("n_classes_"),
                                                               where.key("state").key("n_classes_"), {})
        state = decode_fields(klass._state_schema(params["mondrian"]), d["state"], where.key("state"), {"k": k})
        q = np.asarray(state["quantile_"], dtype=np.float64)
        if np.isnan(q).any():
            raise InputError(f"{where.key('state').key('quantile_')}: expected numbers or +inf, got NaN")
        state["quantile_"] = q if params["mondrian"] else float(q)
        obj = klass(**params)
        for key, value in state.items():
            setattr(obj, key, value)
        return obj


def _upgrade_v1(d: dict) -> dict:
    """A version-1 file in the version-2 encoding: "random_state" is "seed", +inf
    thresholds were null and per-class thresholds a plain list."""
    params = dict(d["params"])
    if "random_state" in params:
        params["seed"] = params.pop("random_state")
    params.setdefault("alpha", d["state"].get("alpha_"))
    state = dict(d["state"])
    q = state.get("quantile_")
    if isinstance(q, list):
        state["quantile_"] = [{"__float__": "inf"} if v is None else v for v in q]
    elif q is None:
        state["quantile_"] = {"__float__": "inf"}
    return {**d, "params": params, "state": state}


def _ranked(p: np.ndarray):
    """Classes by decreasing p (ties: lower index first): (order, sorted p, ranks 0-based)."""
    order = np.argsort(-p, axis=1, kind="stable")
    ps = np.take_along_axis(p, order, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(p.shape[1])[None, :].repeat(p.shape[0], 0), axis=1)
    return order, ps, rank


class LAC(_SplitConformal):
    """Least ambiguous set-valued classifier (Sadinle et al. 2019): s = 1 - p_y.

    Parameters: mondrian (bool), alpha (miscoverage in (0, 1)). Fit with
    ``fit(cal_logits, cal_labels)``.
    """

    name = "lac"

    def _all_scores(self, p, u):
        return 1.0 - p


class APS(_SplitConformal):
    """Adaptive prediction sets (Romano et al. 2020): the probability mass ranked up to y.

    randomized=True (default, as in the paper) adds u p_y instead of p_y, u ~ U[0, 1),
    seeded by ``seed`` (None: drawn at fit and kept as ``seed_``).
    """

    name = "aps"
    param_schema = {**_SplitConformal.param_schema, "randomized": Bool(),
                    "seed": Number(integer=True, ge=0, lt=2**63, nullable=True)}

    @renamed_keywords(random_state="seed")
    def __init__(self, randomized: bool = True, mondrian: bool = False, seed: int | None = 0, alpha: float = 0.1):
        self.randomized = randomized
        self.mondrian = mondrian
        self.seed = seed
        self.alpha = alpha

    def _check_params(self):
        if not isinstance(self.randomized, (bool, np.bool_)):
            raise InputError(f"randomized: expected True or False, got {self.randomized!r}")
        rs = self.seed
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, (int, np.integer)) or rs < 0):
            raise InputError(f"seed: expected a non-negative integer or None, got {rs!r}")

    def _penalty(self, rank):
        return 0.0

    def _all_scores(self, p, u):
        _, ps, rank = _ranked(p)
        cs = np.cumsum(ps, axis=1)
        # cs - ps rounds; the expression is the same on calibration and test rows, so the
        # guarantee is unaffected
        mass = cs if u is None else cs - ps + u[:, None] * ps  # sorted order
        out = np.take_along_axis(mass, rank, axis=1)
        return out + self._penalty(rank)


class RAPS(APS):
    """Regularized APS (Angelopoulos et al. 2021): APS + lam * max(0, rank(y) - k_reg).

    rank is 1-based (the top class has rank 1). Defaults lam=0.01, k_reg=5 (fixed; the
    paper also tunes them on held-out data).
    """

    name = "raps"
    param_schema = {**APS.param_schema, "lam": Number(ge=0), "k_reg": Number(integer=True, ge=0)}

    @renamed_keywords(random_state="seed")
    def __init__(self, lam: float = 0.01, k_reg: int = 5, randomized: bool = True,
                 mondrian: bool = False, seed: int | None = 0, alpha: float = 0.1):
        self.lam = lam
        self.k_reg = k_reg
        self.randomized = randomized
        self.mondrian = mondrian
        self.seed = seed
        self.alpha = alpha

    def _check_params(self):
        super()._check_params()
        if not (isinstance(self.lam, (int, float, np.floating)) and np.isfinite(self.lam) and self.lam >= 0):
            raise InputError(f"lam: expected a non-negative number, got {self.lam!r}")
        if isinstance(self.k_reg, bool) or not isinstance(self.k_reg, (int, np.integer)) or self.k_reg < 0:
            raise InputError(f"k_reg: expected a non-negative integer, got {self.k_reg!r}")

    def _penalty(self, rank):
        return float(self.lam) * np.maximum(rank + 1 - int(self.k_reg), 0)


_CLASSES = {"LAC": LAC, "APS": APS, "RAPS": RAPS}


def from_dict(d: dict, source: str = "conformal") -> _SplitConformal:
    """Rebuild a fitted LAC / APS / RAPS from its :meth:`to_dict` output."""
    return _SplitConformal.from_dict(d, source)


def load(path) -> _SplitConformal:
    """Load a predictor saved with ``save`` (plain JSON, validated; nothing is executed)."""
    from calibrate.io.readers import read_json

    return _SplitConformal.from_dict(read_json(path), str(path))


# --------------------------------------------------------------------- set metrics
def _check_sets(sets, labels=None):
    s = to_numpy(sets, "sets")
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise InputError(f"sets: expected a (n, k) boolean mask, got shape {s.shape}")
    if s.dtype.kind != "b":
        if s.dtype.kind not in "fiu" or not np.isin(s, (0, 1)).all():
            raise InputError(f"sets: expected a boolean (or 0/1) mask, got dtype {s.dtype}")
        s = s.astype(bool)
    if labels is None:
        return s
    y = check_labels(labels, s.shape[0], s.shape[1])
    return s, y


def marginal_coverage(sets, labels) -> float:
    """Fraction of rows whose label is in its set. sets: (n, k) bool; labels: (n,) int."""
    s, y = _check_sets(sets, labels)
    return float(np.mean(s[np.arange(s.shape[0]), y]))


def mean_set_size(sets) -> float:
    """Mean number of classes per set. sets: (n, k) bool."""
    s = _check_sets(sets)
    return float(s.sum(axis=1, dtype=np.int64).mean())


def class_conditional_coverage(sets, labels) -> dict:
    """Coverage within each true class: dict(per_class (k,) float, NaN for absent classes;
    count (k,) int; worst = the minimum over present classes)."""
    s, y = _check_sets(sets, labels)
    k = s.shape[1]
    hit = s[np.arange(s.shape[0]), y].astype(np.float64)
    count = np.bincount(y, minlength=k)
    cov_sum = np.bincount(y, weights=hit, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(count > 0, cov_sum / np.maximum(count, 1), np.nan)
    return {"per_class": per, "count": count, "worst": float(np.nanmin(per))}


def size_stratified_coverage(sets, labels) -> dict:
    """Coverage by set size (Angelopoulos et al. 2021): dict(size (m,) int of the sizes that
    occur, count (m,) int, coverage (m,) float, worst = the minimum coverage)."""
    s, y = _check_sets(sets, labels)
    size = s.sum(axis=1, dtype=np.int64)
    hit = s[np.arange(s.shape[0]), y].astype(np.float64)
    sizes, inv = np.unique(size, return_inverse=True)
    count = np.bincount(inv)
    cov = np.bincount(inv, weights=hit) / count
    return {"size": sizes, "count": count, "coverage": cov, "worst": float(cov.min())}
