"""The calibrator interface, and saving fitted calibrators as plain JSON (never pickle).

A calibrator maps logits (n, k) to calibrated probabilities (n, k):

    cal = TemperatureScaling().fit(val_logits, val_labels)
    probs = cal.predict_proba(test_logits)
    cal.save("cal.json");  cal = calibrate.load("cal.json")

Constructor arguments are hyperparameters only; ``fit`` sets attributes ending in ``_``
and returns self (scikit-learn's convention). The JSON file holds the class name, the
hyperparameters and every fitted attribute; arrays are stored as nested lists of
float64 written with 17 significant digits, so a loaded calibrator predicts the same
bits as the one saved.
"""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
from scipy.special import log_softmax as _log_softmax

from .._blocks import row_blocks
from .._validation import InputError, check_logits_labels, check_scores

FORMAT = "calibrate.calibrator"
FORMAT_VERSION = 1
_REGISTRY: dict[str, type] = {}


class NotFittedError(RuntimeError):
    """The calibrator was used before ``fit``."""


class Calibrator:
    """Base class: subclasses implement ``_fit(z, y)`` and ``_log_proba(z)``.

    ``z`` is (n, k) float64 logits and ``y`` (n,) int64 labels, already validated.
    """

    name: str = ""  # the command line's --method name
    _keep_dtype = False  # True: _fit/_log_proba take float32 or memory-mapped z as is (row blocks)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.name:
            _REGISTRY[cls.name] = cls

    # -------------------------------------------------------------- public API
    def fit(self, logits, labels):
        """Fit on validation logits (n, k) and labels (n,). Returns self."""
        z, y = check_logits_labels(logits, labels)
        if z.shape[1] < 2:
            raise InputError(f"logits: a calibrator needs at least 2 classes, got shape {z.shape}")
        self.n_classes_ = int(z.shape[1])
        self._fit(z if self._keep_dtype else z.astype(np.float64, copy=False), y)
        return self

    def predict_log_proba(self, logits) -> np.ndarray:
        """(n, k) float64 calibrated log-probabilities."""
        self._check_fitted()
        z = check_scores(logits, "logits", kind="logits")
        if z.shape[1] != self.n_classes_:
            raise InputError(
                f"logits: this calibrator was fitted on {self.n_classes_} classes, got {z.shape[1]}"
            )
        if self._keep_dtype:
            return self._log_proba(z)
        # every calibrator maps rows independently: predict in row blocks, so the only
        # full-size array is the output (no float64 copy of the input, no full temporaries)
        n, k = z.shape
        out = np.empty((n, k), dtype=np.float64)
        for s in row_blocks(n, k, 1 << 18):
            out[s] = self._log_proba(np.asarray(z[s], dtype=np.float64))
        return out

    def predict_proba(self, logits) -> np.ndarray:
        """(n, k) float64 calibrated probabilities; each row sums to 1."""
        lp = self.predict_log_proba(logits)
        return np.exp(lp, out=lp) if isinstance(lp, np.ndarray) else np.exp(lp)

    def fit_predict_proba(self, logits, labels) -> np.ndarray:
        return self.fit(logits, labels).predict_proba(logits)

    # -------------------------------------------------------------- params & state
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict:
        return {p: getattr(self, p) for p in self._param_names()}

    def fitted_state(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def is_fitted(self) -> bool:
        return hasattr(self, "n_classes_")

    def _check_fitted(self):
        if not self.is_fitted():
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet: call fit(logits, labels) first"
            )

    def summary(self) -> dict:
        """The few fitted numbers worth printing (overridden by subclasses)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "class": type(self).__name__,
            "method": self.name,
            "params": _encode(self.get_params()),
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
