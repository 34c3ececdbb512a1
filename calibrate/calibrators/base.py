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

from .._validation import InputError, as_logits, check_labels
from ._schema import Loc, Number, decode_fields

FORMAT = "calibrate.calibrator"
FORMAT_VERSION = 1
MAX_CLASSES = 1_000_000
_REGISTRY: dict[str, type] = {}
_TOP_LEVEL = ("format", "version", "class", "method", "params", "state")


class NotFittedError(RuntimeError):
    """The calibrator was used before ``fit``."""


class Calibrator:
    """Base class: subclasses implement ``_fit(z, y)`` and ``_log_proba(z)``.

    ``z`` is (n, k) float64 logits and ``y`` (n,) int64 labels, already validated.
    """

    name: str = ""  # the command line's --method name
    # The file schema (calibrate.calibrators._schema): every hyperparameter and every
    # fitted attribute a saved file may hold, with its type, shape and range. A subclass
    # declares its own; ``n_classes_`` is added to every state schema.
    param_schema: dict | None = None
    state_schema: dict | None = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.name:
            _REGISTRY[cls.name] = cls

    # -------------------------------------------------------------- public API
    def fit(self, logits, labels, *, kind: str | None = None):
        """Fit on validation logits (n, k) and labels (n,). Returns self.

        kind: "logits", "probs" or "log_probs" (what ``logits`` holds); None means logits,
        with a CalibrationWarning when they look like probabilities or log-probabilities.
        A fit that fails leaves the calibrator as it was (fitted or not).
        """
        z = as_logits(logits, "logits", kind)
        y = check_labels(labels, z.shape[0], z.shape[1], "labels")
        if z.shape[1] < 2:
            raise InputError(f"logits: a calibrator needs at least 2 classes, got shape {z.shape}")
        before = dict(vars(self))
        try:
            self.n_classes_ = int(z.shape[1])
            self._fit(z.astype(np.float64, copy=False), y)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise
        return self

    def predict_log_proba(self, logits, *, kind: str | None = None) -> np.ndarray:
        """(n, k) float64 calibrated log-probabilities. kind: as for ``fit``."""
        self._check_fitted()
        z = as_logits(logits, "logits", kind)
        if z.shape[1] != self.n_classes_:
            raise InputError(
                f"logits: expected {self.n_classes_} columns (this calibrator was fitted on "
                f"{self.n_classes_} classes), got shape {z.shape}"
            )
        lp = self._log_proba(z.astype(np.float64, copy=False))
        if not np.isfinite(lp).all():  # finite logits and valid parameters never give this
            i = int(np.argwhere(~np.isfinite(lp))[0, 0])
            raise InputError(
                f"logits: the calibrated log-probabilities overflow at row {i} (max |logit| "
                f"{float(np.abs(z[i]).max()):.3g}): the logits are too large for this calibrator's "
                "parameters; check the logits' scale and the calibrator file"
            )
        return lp

    def predict_proba(self, logits, *, kind: str | None = None) -> np.ndarray:
        """(n, k) float64 calibrated probabilities; each row sums to 1."""
        return np.exp(self.predict_log_proba(logits, kind=kind))

    def fit_predict_proba(self, logits, labels, *, kind: str | None = None) -> np.ndarray:
        return self.fit(logits, labels, kind=kind).predict_proba(logits, kind=kind)

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

    def to_json(self) -> str:
        """The file ``save`` writes: JSON text, one line per field."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    @classmethod
    def _state_dims(cls, n_classes: int) -> dict:
        """Dimension names a state schema may use besides ``k`` (= n_classes)."""
        return {"k": n_classes}

    def _check_state(self, where: Loc) -> None:
        """Cross-field rules on a loaded state (raise SchemaError); the fields are each valid."""

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibrator") -> Calibrator:
        """A fitted calibrator from a saved dict, checked against its class's schema first.

        Refused (InputError naming ``source`` and the field): another format or version,
        an unknown method, a class that does not match it, an unknown or missing field, a
        value of the wrong type, shape or range. Attributes are set only from the fields
        the schema declares, after every check has passed.
        """
        where = Loc(source)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError(f"{source}: not a calibrate calibrator file (expected \"format\": \"{FORMAT}\"); "
                             "give a file written by calibrate fit or Calibrator.save")
        if d.get("version") != FORMAT_VERSION:
            raise InputError(f"{source}: field 'version': expected {FORMAT_VERSION}, got {d.get('version')!r}; "
                             "this file was written by another version of calibrate: fit it again")
        unknown = [k for k in d if k not in _TOP_LEVEL]
        if unknown:
            raise InputError(f"{source}: field '{unknown[0]}': unknown field (known: {', '.join(_TOP_LEVEL)}); "
                             "remove it")
        method = d.get("method")
        klass = _REGISTRY.get(method) if isinstance(method, str) else None
        if klass is None:
            raise InputError(f"{source}: field 'method': expected one of {', '.join(sorted(_REGISTRY))}, "
                             f"got {method!r}")
        if d.get("class", klass.__name__) != klass.__name__:
            raise InputError(f"{source}: field 'class': expected {klass.__name__!r} for method {method!r}, "
                             f"got {d.get('class')!r}")
        if klass.param_schema is None or klass.state_schema is None:
            raise InputError(f"{source}: {klass.__name__} declares no file schema, so its files cannot be "
                             "checked and are not loaded")
        for part in ("params", "state"):
            if not isinstance(d.get(part), dict):
                raise InputError(f"{source}: field '{part}': expected an object, got "
                                 f"{type(d.get(part)).__name__ if part in d else 'nothing (missing)'}")
        params = decode_fields(klass.param_schema, d["params"], where.key("params"), {})
        raw_k = d["state"].get("n_classes_")
        k = Number(integer=True, ge=2, le=MAX_CLASSES).decode(raw_k, where.key("state").key("n_classes_"), {})
        schema = {"n_classes_": Number(integer=True, ge=2, le=MAX_CLASSES), **klass.state_schema}
        state = decode_fields(schema, d["state"], where.key("state"), klass._state_dims(k))
        obj = klass(**params)
        for key, value in state.items():
            setattr(obj, key, value)
        obj._check_state(where.key("state"))
        return obj

    def save(self, path) -> None:
        """Write the fitted calibrator as JSON (a temporary file, fsync, rename: see calibrate.outputs)."""
        from ..outputs import write_outputs

        self._check_fitted()
        write_outputs({path: self.to_json()})


def load(path) -> Calibrator:
    """Load a calibrator saved with ``save`` (plain JSON, checked against its schema; nothing
    is executed)."""
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
