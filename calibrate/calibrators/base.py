"""The calibrator interface, and saving fitted calibrators as plain JSON (never pickle).

A calibrator maps logits (n, k) to calibrated probabilities (n, k):

    cal = TemperatureScaling().fit(val_logits, val_labels)
    probs = cal.predict_proba(test_logits)
    cal.save("cal.json");  cal = calibrate.load("cal.json")

Constructor arguments are hyperparameters only, stored unchanged; ``fit`` sets attributes
ending in ``_`` and returns self. Calibrators are scikit-learn estimators
(``sklearn.base.BaseEstimator``): ``get_params`` / ``set_params`` / ``sklearn.base.clone``
work on every one, and unfitted use raises :class:`NotFittedError`, a subclass of
``sklearn.exceptions.NotFittedError``. Labels may be any sortable values (strings too):
``classes_`` holds them, column j of the logits stands for ``classes_[j]``.

The JSON file holds the class name, the hyperparameters and every fitted attribute; arrays are stored as nested lists of
float64 written with 17 significant digits, so a loaded calibrator predicts the same
bits as the one saved.
"""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
from scipy.special import log_softmax as _log_softmax
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from .._validation import InputError, check_labels, check_scores, to_numpy

FORMAT = "calibrate.calibrator"
FORMAT_VERSION = 1
_REGISTRY: dict[str, type] = {}


class NotFittedError(_SklearnNotFittedError, RuntimeError):
    """The calibrator was used before ``fit``.

    A ``sklearn.exceptions.NotFittedError`` (so scikit-learn code that catches it works),
    and still a ``RuntimeError`` as before.
    """


def encode_labels(labels, n: int, k: int, name: str = "labels"):
    """(classes (k,), y (n,) int64 in [0, k)) from labels (n,) of any kind.

    Integer class indices in [0, k) (also integral floats and booleans) are kept as they
    are, classes = 0..k-1, so a class absent from the data keeps its column. Any other
    labels (strings, {-1, 1}, {1, 2}, ...) are mapped as ``np.unique`` sorts them: the
    j-th smallest distinct label is column j; then exactly k distinct labels are needed.
    """
    if hasattr(labels, "detach"):
        arr = to_numpy(labels, name)
    else:
        arr = np.asarray(labels)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-d array of labels, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise InputError(f"{name}: expected {n} labels (one per row), got {arr.shape[0]}")
    index_error = None
    if arr.dtype.kind in "biuf":
        try:
            return np.arange(k), check_labels(arr, n, k, name)
        except InputError as e:
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise
            index_error = e
    try:
        classes, y = np.unique(arr, return_inverse=True)
    except TypeError as e:
        raise InputError(f"{name}: labels of mixed types cannot be sorted ({e})") from None
    if classes.size != k:
        if index_error is not None:  # numbers that are neither indices 0..k-1 nor k labels
            raise index_error
        raise InputError(
            f"{name}: expected {k} distinct labels, one per logit column (column j is the j-th "
            f"smallest label), got {classes.size}: {_preview(classes)}"
        )
    return classes, y.reshape(-1).astype(np.int64)


def _preview(values, limit=6):
    items = [repr(v.item() if isinstance(v, np.generic) else v) for v in values[:limit]]
    return ", ".join(items) + (", ..." if len(values) > limit else "")


class Calibrator(BaseEstimator):
    """Base class: subclasses implement ``_fit(z, y)`` and ``_log_proba(z)``.

    ``z`` is (n, k) float64 logits and ``y`` (n,) int64 labels in [0, k), already
    validated. Hyperparameters are the arguments of ``__init__``, which stores them
    unchanged (scikit-learn's rule; ``get_params`` reads them back from the signature).
    """

    name: str = ""  # the command line's --method name

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.name:
            _REGISTRY[cls.name] = cls

    # -------------------------------------------------------------- public API
    def fit(self, logits, labels):
        """Fit on validation logits (n, k) float and labels (n,). Returns self.

        labels: class indices 0..k-1, or any k distinct values (strings too), mapped to
        columns in sorted order (see :func:`encode_labels`); ``classes_`` keeps them.
        """
        z = check_scores(logits, "logits", kind="logits")
        if z.shape[1] < 2:
            raise InputError(f"logits: a calibrator needs at least 2 classes, got shape {z.shape}")
        classes, y = encode_labels(labels, z.shape[0], z.shape[1])
        self._fit(z.astype(np.float64, copy=False), y)
        self.classes_ = classes
        self.n_classes_ = int(z.shape[1])
        return self

    def predict_log_proba(self, logits) -> np.ndarray:
        """(n, k) float64 calibrated log-probabilities."""
        self._check_fitted()
        z = check_scores(logits, "logits", kind="logits")
        if z.shape[1] != self.n_classes_:
            raise InputError(
                f"logits: this calibrator was fitted on {self.n_classes_} classes, got {z.shape[1]}"
            )
        return self._log_proba(z.astype(np.float64, copy=False))

    def predict_proba(self, logits) -> np.ndarray:
        """(n, k) float64 calibrated probabilities; each row sums to 1."""
        return np.exp(self.predict_log_proba(logits))

    def predict(self, logits) -> np.ndarray:
        """(n,) the most probable class of each row, as a label from ``classes_``."""
        classes = getattr(self, "classes_", None)
        idx = self.predict_log_proba(logits).argmax(axis=1)
        return idx if classes is None else np.asarray(classes)[idx]

    def fit_predict_proba(self, logits, labels) -> np.ndarray:
        return self.fit(logits, labels).predict_proba(logits)

    # -------------------------------------------------------------- params & state
    @classmethod
    def _param_names(cls) -> list[str]:
        return list(cls._get_param_names())

    @classmethod
    def _get_param_names(cls):
        # scikit-learn's rule (the explicit arguments of __init__, sorted), with a clear
        # error for a subclass that takes *args.
        params = inspect.signature(cls.__init__).parameters.values()
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            raise TypeError(f"{cls.__name__}.__init__ must not take *args (scikit-learn's rule)")
        return sorted(p.name for p in params if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def fitted_state(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def is_fitted(self) -> bool:
        return hasattr(self, "n_classes_")

    def __sklearn_is_fitted__(self) -> bool:  # read by sklearn.utils.validation.check_is_fitted
        return self.is_fitted()

    def _check_fitted(self):
        if not self.is_fitted():
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet: call fit(logits, labels) first"
            )

    def _validate_state(self, source: str) -> None:
        """Check a loaded state (shapes, finite values); raise InputError naming ``source``."""

    def summary(self) -> dict:
        """The few fitted numbers worth printing (overridden by subclasses)."""
        return {}

    def __repr__(self, N_CHAR_MAX=700):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    # -------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "class": type(self).__name__,
            "method": self.name,
            "params": _encode(self.get_params(deep=False)),
            "state": _encode(self.fitted_state()),
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibrator") -> Calibrator:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError(f"{source}: not a calibrate calibrator file (no \"format\": \"{FORMAT}\")")
        if d.get("version") != FORMAT_VERSION:
            raise InputError(f"{source}: unsupported calibrator file version {d.get('version')!r}")
        method = d.get("method")
        klass = _REGISTRY.get(method)
        if klass is None:
            raise InputError(f"{source}: unknown method {method!r}; known: {', '.join(sorted(_REGISTRY))}")
        try:
            obj = klass(**_decode(d.get("params", {})))
            for k, v in _decode(d["state"]).items():
                if not k.endswith("_"):
                    raise InputError(f"{source}: field 'state.{k}' is not a fitted attribute")
                setattr(obj, k, v)
        except (KeyError, TypeError) as e:
            raise InputError(f"{source}: malformed calibrator file ({e})") from None
        if not obj.is_fitted():
            raise InputError(f"{source}: field 'state.n_classes_' is missing")
        obj._validate_state(source)
        return obj

    def save(self, path) -> None:
        """Write the fitted calibrator as JSON (atomically: a temporary file, then rename)."""
        from ..io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")


def load(path) -> Calibrator:
    """Load a calibrator saved with ``save`` (plain JSON; nothing is executed)."""
    from ..io import read_json

    return Calibrator.from_dict(read_json(path), str(path))


def available_methods() -> list[str]:
    return list(_REGISTRY)


def get_calibrator(method: str, **params) -> Calibrator:
    if method not in _REGISTRY:
        raise InputError(f"method: expected one of {', '.join(_REGISTRY)}, got {method!r}")
    return _REGISTRY[method](**params)


def _encode(x):
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "US":  # string class labels (classes_)
            return {"__ndarray__": x.astype(str).tolist(), "dtype": "str"}
        if x.dtype.kind == "O":
            raise InputError("save: labels of Python objects cannot be saved as JSON; use strings or integers")
        if x.dtype.kind in "iub":
            return {"__ndarray__": x.tolist(), "dtype": "int64" if x.dtype.kind != "b" else "bool"}
        return {"__ndarray__": x.astype(np.float64).tolist(), "dtype": "float64"}
    if isinstance(x, dict):
        return {str(k): _encode(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_encode(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return {"__float__": repr(x)}
    return x


def _decode(x):
    if isinstance(x, dict):
        if "__ndarray__" in x:
            return np.array(x["__ndarray__"], dtype=x.get("dtype", "float64"))
        if "__float__" in x:
            return float(x["__float__"])
        return {k: _decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode(v) for v in x]
    return x


# ------------------------------------------------------------------ shared helpers
def log_softmax64(z: np.ndarray) -> np.ndarray:
    return _log_softmax(z, axis=1)


def one_vs_rest_log_odds(z: np.ndarray) -> np.ndarray:
    """(n, k) float64 log-odds of each class against the rest: log p_j - log(1 - p_j).

    Computed from logits without cancellation: for every class but the top one,
    log sum_{i != j} exp(z_i) = m + log(S - e_j) (S >= 1 >> e_j is safe); for the top
    class the sum over the others is computed directly.
    """
    n, k = z.shape
    top = z.argmax(axis=1)
    m = z[np.arange(n), top]
    e = np.exp(z - m[:, None])
    s = e.sum(axis=1)
    with np.errstate(divide="ignore"):
        lse_rest = np.log(s[:, None] - e) + m[:, None]
    zt = z.copy()
    zt[np.arange(n), top] = -np.inf
    m2 = zt.max(axis=1)
    lse_top = m2 + np.log(np.exp(zt - m2[:, None]).sum(axis=1))
    lse_rest[np.arange(n), top] = lse_top
    return z - lse_rest
