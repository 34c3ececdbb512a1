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

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from calibrate._core.blocks import (
    BLOCK_BYTES,
    log_softmax64,  # noqa: F401 (log_softmax64: the calibrators import it here)
    row_blocks,
)
from calibrate._core.validation import (
    InputError,
    absent_mask,
    as_logits,
    check_gold_finite,
    check_labels,
    to_numpy,
)
from calibrate.calibrators._schema import (
    ClassLabels,
    Loc,
    Number,
    check_envelope,
    check_parts,
    decode_fields,
)
from calibrate.calibrators._schema import encode as _encode

FORMAT = "calibrate.calibrator"
FORMAT_VERSION = 1
MAX_CLASSES = 1_000_000
_REGISTRY: dict[str, type] = {}
_TOP_LEVEL = ("format", "version", "class", "method", "params", "state")


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


def keep_absent(lp: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(m, k) log-probabilities with the absent options (mask (m, k) bool, True where the
    input logit was -inf) set to -inf and each row renormalised over its present options
    (in place); a row with one present option gives it log-probability 0. mask None: lp."""
    if mask is None:
        return lp
    lp[mask] = -np.inf
    single = (~mask).sum(axis=1) == 1
    if single.any():
        lp[single] = np.where(mask[single], -np.inf, 0.0)
    m = lp.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        lp -= m + np.log(np.exp(lp - m).sum(axis=1, keepdims=True))
    return lp


def fill_absent(x: np.ndarray, value: float = 0.0) -> np.ndarray:
    """x with its -inf entries replaced by ``value`` (a copy only when there are any)."""
    mask = np.isneginf(x)
    if not mask.any():
        return x
    x = x.copy()
    x[mask] = value
    return x


def _check_finite_output(lp: np.ndarray, z: np.ndarray, offset: int) -> None:
    """Finite logits and valid parameters never give a non-finite log-probability: refuse
    it (-inf where the logit is -inf, an absent option, is the expected value)."""
    bad = ~np.isfinite(lp)
    if bad.any():
        bad &= ~np.isneginf(np.asarray(z))
    if bad.any():
        i = int(np.argwhere(bad)[0, 0])
        raise InputError(
            f"logits: the calibrated log-probabilities overflow at row {offset + i} (max |logit| "
            f"{float(np.abs(fill_absent(np.asarray(z[i], dtype=np.float64))).max()):.3g}): the logits are too large for "
            "this calibrator's parameters; check the logits' scale and the calibrator file"
        )


class Calibrator(BaseEstimator):
    """Base class: subclasses implement ``_fit(z, y)`` and ``_log_proba(z)``.

    ``z`` is (n, k) float64 logits and ``y`` (n,) int64 labels in [0, k), already
    validated. A logit may be -inf (an absent option; never the label's): ``_fit`` fits
    on the present entries, ``_log_proba`` must give finite (or -inf) values at the
    present entries, and :meth:`predict_log_proba` then sets the absent entries to -inf
    and renormalises each row over its present options (:func:`keep_absent`). Hyperparameters are the arguments of ``__init__``, which stores them
    unchanged (scikit-learn's rule; ``get_params`` reads them back from the signature).
    """

    name: str = ""  # the command line's --method name
    # The file schema (calibrate.calibrators._schema): every hyperparameter and every
    # fitted attribute a saved file may hold, with its type, shape and range. A subclass
    # declares its own; ``n_classes_`` is added to every state schema.
    param_schema: dict | None = None
    state_schema: dict | None = None
    _keep_dtype = False  # True: _fit/_log_proba take float32 or memory-mapped z as is (row blocks)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.name:
            _REGISTRY[cls.name] = cls

    # -------------------------------------------------------------- public API
    def fit(self, logits, labels, *, kind: str | None = None):
        """Fit on validation logits (n, k) and labels (n,). Returns self.

        labels: class indices 0..k-1, or any k distinct values (strings too), mapped to
        columns in sorted order (see :func:`encode_labels`); ``classes_`` keeps them.
        kind: "logits", "probs" or "log_probs" (what ``logits`` holds); None means logits,
        with a CalibrationWarning when they look like probabilities or log-probabilities.
        A fit that fails leaves the calibrator as it was (fitted or not).
        """
        z = as_logits(logits, "logits", kind)
        if z.shape[1] < 2:
            raise InputError(f"logits: a calibrator needs at least 2 classes, got shape {z.shape}")
        classes, y = encode_labels(labels, z.shape[0], z.shape[1])
        check_gold_finite(z, y)
        before = dict(vars(self))
        try:
            self.n_classes_ = int(z.shape[1])
            self._fit(z if self._keep_dtype else z.astype(np.float64, copy=False), y)
            self.classes_ = classes
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
        if self._keep_dtype:
            lp = self._log_proba(z)
            if isinstance(lp, np.ndarray):
                for s in row_blocks(*lp.shape, 8, 4 * BLOCK_BYTES):
                    _check_finite_output(lp[s], z[s], s.start)
            return lp
        # every calibrator maps rows independently: predict in row blocks, so the only
        # full-size array is the output (no float64 copy of the input, no full temporaries)
        n, k = z.shape
        out = np.empty((n, k), dtype=np.float64)
        for s in row_blocks(n, k, 8, 4 * BLOCK_BYTES):
            zb = np.asarray(z[s], dtype=np.float64)
            out[s] = keep_absent(self._log_proba(zb), absent_mask(zb))
            _check_finite_output(out[s], zb, s.start)
        return out

    def predict_proba(self, logits, *, kind: str | None = None) -> np.ndarray:
        """(n, k) float64 calibrated probabilities; each row sums to 1."""
        lp = self.predict_log_proba(logits, kind=kind)
        return np.exp(lp, out=lp) if isinstance(lp, np.ndarray) else np.exp(lp)

    def predict(self, logits, *, kind: str | None = None) -> np.ndarray:
        """(n,) the most probable class of each row, as a label from ``classes_``."""
        classes = getattr(self, "classes_", None)
        idx = self.predict_log_proba(logits, kind=kind).argmax(axis=1)
        return idx if classes is None else np.asarray(classes)[idx]

    def fit_predict_proba(self, logits, labels, *, kind: str | None = None) -> np.ndarray:
        return self.fit(logits, labels, kind=kind).predict_proba(logits, kind=kind)

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

    def summary(self) -> dict:
        """The few fitted numbers worth printing (overridden by subclasses)."""
        return {}

    def to_torch(self):
        """A torch.nn.Module mapping logits (n, k) to calibrated logits (n, k) (softmax of
        its output is ``predict_proba``); imports torch. Every built-in calibrator returns
        its own module (calibrate.calibrators.torch_modules); this default runs
        ``predict_log_proba`` through numpy on the CPU (not differentiable)."""
        self._check_fitted()
        from calibrate.calibrators.torch_modules import NumpyModule

        return NumpyModule(self)

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
        check_envelope(d, source, fmt=FORMAT, versions=(FORMAT_VERSION,), fields=_TOP_LEVEL, what="calibrator",
                       writer="calibrate fit or Calibrator.save")
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
        check_parts(d, source)
        params = decode_fields(klass.param_schema, d["params"], where.key("params"), {})
        raw_k = d["state"].get("n_classes_")
        k = Number(integer=True, ge=2, le=MAX_CLASSES).decode(raw_k, where.key("state").key("n_classes_"), {})
        schema = {"n_classes_": Number(integer=True, ge=2, le=MAX_CLASSES), **klass.state_schema,
                  "classes_": ClassLabels().optional()}
        state = decode_fields(schema, d["state"], where.key("state"), klass._state_dims(k))
        obj = klass(**params)
        for key, value in state.items():
            setattr(obj, key, value)
        obj._check_state(where.key("state"))
        return obj

    def save(self, path) -> None:
        """Write the fitted calibrator as JSON, atomically: a temporary file in the same
        directory, fsync, rename (calibrate.io.outputs.write_atomic). The process's signal
        handlers are not touched; on failure the previous file is intact and an InputError
        names the file."""
        from calibrate.io.outputs import write_atomic

        self._check_fitted()
        write_atomic(path, self.to_json())


class JsonFileMixin:
    """``save(path)`` / ``load(path)`` / ``to_json()`` for an estimator with ``_check_fitted()``,
    ``to_dict()`` and ``from_dict(d, source)``: plain JSON, written atomically, checked on
    reading. Its file is {"format": json_format, "version": 1, "class", "params", "state"}
    (:meth:`_envelope`), checked by :meth:`_open_saved` before the parts are decoded."""

    json_format: str = ""  # the file's "format"
    json_what: str = ""  # the kind of file, for messages ("grouped calibrator")
    _JSON_FIELDS = ("format", "version", "class", "params", "state")

    def _envelope(self, params: dict, state: dict) -> dict:
        return {"format": self.json_format, "version": 1, "class": type(self).__name__, "params": params,
                "state": state}

    @classmethod
    def _open_saved(cls, d, source: str) -> Loc:
        """Check a saved dict's envelope (format, version, fields, class, parts are objects);
        returns the Loc of ``source`` for the messages of the parts."""
        check_envelope(d, source, fmt=cls.json_format, versions=(1,), fields=cls._JSON_FIELDS,
                       what=cls.json_what, writer=f"{cls.__name__}.save")
        if d.get("class", cls.__name__) != cls.__name__:
            raise InputError(f"{source}: field 'class': expected {cls.__name__!r}, got {d.get('class')!r}")
        check_parts(d, source)
        return Loc(source)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    def save(self, path) -> None:
        """Write the fitted object as JSON (atomically: calibrate.io.outputs.write_atomic)."""
        from calibrate.io.outputs import write_atomic

        self._check_fitted()
        write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path):
        """Load a file written by :meth:`save` (plain JSON, checked; nothing is executed)."""
        from calibrate.io.readers import read_json

        return cls.from_dict(read_json(path), str(path))


def check_classes(cal, cal_path, data) -> None:
    """Refuse a calibrator fitted on another number of classes than ``data`` (Predictions) has."""
    if cal.n_classes_ != data.k:
        raise InputError(f"{data.path}: has {data.k} classes, but the calibrator {cal_path} was fitted on "
                         f"{cal.n_classes_} classes; give predictions with {cal.n_classes_} class columns, or fit a "
                         "calibrator on these")


def load(path) -> Calibrator:
    """Load a calibrator saved with ``save`` (plain JSON, checked against its schema; nothing
    is executed)."""
    from calibrate.io.readers import read_json

    return Calibrator.from_dict(read_json(path), str(path))


def available_methods() -> list[str]:
    return list(_REGISTRY)


def get_calibrator(method: str, **params) -> Calibrator:
    if method not in _REGISTRY:
        raise InputError(f"method: expected one of {', '.join(_REGISTRY)}, got {method!r}")
    return _REGISTRY[method](**params)


# ------------------------------------------------------------------ shared helpers
def one_vs_rest_log_odds(z: np.ndarray) -> np.ndarray:
    """(n, k) float64 log-odds of each class against the rest: log p_j - log(1 - p_j).

    Computed from logits without cancellation: for every class but the top one,
    log sum_{i != j} exp(z_i) = m + log(S - e_j) (S >= 1 >> e_j is safe); for the top
    class the sum over the others is computed directly. An absent option (z_j = -inf)
    has log-odds -inf; the only present option of a row has +inf.
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
    with np.errstate(invalid="ignore", divide="ignore"):
        lse_top = m2 + np.log(np.exp(zt - m2[:, None]).sum(axis=1))
    lse_top[np.isneginf(m2)] = -np.inf  # one present option: the rest has probability 0
    lse_rest[np.arange(n), top] = lse_top
    return z - lse_rest
