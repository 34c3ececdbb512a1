"""Per-label calibration of multi-label models: one binary calibrator per label, fitted in one call.

    cal = MultiLabelCalibrator("platt").fit(val_logits, val_indicator, kind="logits")
    probs = cal.predict_proba(test_logits, kind="logits")      # (n, L) P(label on)
    cal.save("ml.json");  cal = MultiLabelCalibrator.load("ml.json")

Scores are (n, L) independent sigmoid outputs, logits z or probabilities p (``kind=``,
required, never guessed); labels the (n, L) 0/1 indicator matrix (scikit-learn's
multi-label format). Label j is the binary problem z_j against y_j, handed to the binary
calibrator as the 2-column logits [0, z_j] (the package's convention for (n,) binary
scores), so softmax gives P(on) = sigmoid(z_j): Platt fits sigmoid(a z + b), temperature
sigmoid(z / T), isotonic a monotone map of sigmoid(z), beta a ln p - b ln(1 - p) + c.
Probabilities become logits log p - log(1 - p), each term clipped at the smallest positive
float64 (so p = 0 or 1 stays finite).

A scikit-learn estimator: ``method`` and ``params`` (the binary calibrator's
hyperparameters) are stored unchanged; ``fit`` sets ``calibrators_`` (L fitted binary
calibrators) and ``n_labels_`` and returns self; ``get_params`` and ``sklearn.base.clone``
work. The JSON file nests each label's calibrator file (the format of
:mod:`calibrate.calibrators.base`, checked against its schema on load).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from calibrate._core.validation import InputError, check_choice
from calibrate.calibrators._schema import Choice, Field, Loc, Number, decode_fields
from calibrate.calibrators.base import _REGISTRY, Calibrator, JsonFileMixin, NotFittedError, _encode
from calibrate.metrics.multilabel import check_multilabel, check_multilabel_scores

METHODS = ("platt", "temperature", "isotonic", "beta")
FORMAT = "calibrate.multilabel_calibrator"
_TINY = np.finfo(np.float64).tiny


def as_label_logits(x: np.ndarray, kind: str) -> np.ndarray:
    """(n, L) float64 logits from validated probabilities or logits."""
    if kind == "logits":
        return x
    return np.log(np.maximum(x, _TINY)) - np.log(np.maximum(1.0 - x, _TINY))


class MultiLabelCalibrator(JsonFileMixin, BaseEstimator):
    """One binary calibrator per label of an (n, L) multi-label model.

    method: "platt", "temperature", "isotonic" or "beta" (the binary calibrator).
    params: a dict of that calibrator's hyperparameters (None: its defaults), e.g.
    ``{"bounds": (0.05, 20.0)}`` for temperature.
    Fitted: calibrators_ (list of L fitted calibrators), n_labels_.
    """

    json_format = FORMAT
    json_what = "multi-label calibrator"

    def __init__(self, method: str = "platt", params: dict | None = None):
        self.method = method
        self.params = params

    # -------------------------------------------------------------- fit / predict
    def _new_calibrator(self) -> Calibrator:
        check_choice(self.method, "method", METHODS)
        params = {} if self.params is None else self.params
        if not isinstance(params, dict):
            raise InputError(f"params: expected a dict of {self.method} hyperparameters or None, got "
                             f"{type(params).__name__}")
        klass = _REGISTRY[self.method]
        known = klass._get_param_names()
        unknown = [k for k in params if k not in known]
        if unknown:
            raise InputError(f"params: {unknown[0]!r} is not a hyperparameter of {klass.__name__} "
                             f"(known: {', '.join(known) or 'none'})")
        return klass(**params)

    def fit(self, scores, labels, *, kind: str):
        """Fit on scores (n, L) (kind "logits" or "probs") and the (n, L) 0/1 indicator labels. Returns self."""
        x, y = check_multilabel(scores, labels, kind)
        z = as_label_logits(x, kind)
        cals = []
        for j in range(z.shape[1]):
            cal = self._new_calibrator()
            try:
                cal.fit(z[:, j], y[:, j].astype(np.int64), kind="logits")
            except InputError as e:
                raise type(e)(f"label {j}: {e}") from None
            cals.append(cal)
        self.calibrators_ = cals
        self.n_labels_ = int(z.shape[1])
        return self

    def predict_proba(self, scores, *, kind: str) -> np.ndarray:
        """(n, L) float64 calibrated P(label on)."""
        self._check_fitted()
        x = self._check_scores(scores, kind)
        z = as_label_logits(x, kind)
        out = np.empty(z.shape)
        for j, cal in enumerate(self.calibrators_):
            out[:, j] = cal.predict_proba(z[:, j], kind="logits")[:, 1]
        return out

    def predict(self, scores, *, kind: str, threshold: float = 0.5) -> np.ndarray:
        """(n, L) int64 indicator matrix: calibrated P(on) > threshold."""
        return (self.predict_proba(scores, kind=kind) > threshold).astype(np.int64)

    def _check_scores(self, scores, kind):
        x = check_multilabel_scores(scores, kind)
        if x.shape[1] != self.n_labels_:
            raise InputError(f"scores: expected {self.n_labels_} label columns (this calibrator was fitted on "
                             f"{self.n_labels_} labels), got shape {x.shape}")
        return x

    def is_fitted(self) -> bool:
        return hasattr(self, "calibrators_")

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted()

    def _check_fitted(self):
        if not self.is_fitted():
            raise NotFittedError("MultiLabelCalibrator is not fitted yet: call fit(scores, labels, kind=...) first")

    def summary(self) -> dict:
        """Each label's fitted numbers: {"label j": {...}}."""
        self._check_fitted()
        return {f"label {j}": cal.summary() for j, cal in enumerate(self.calibrators_)}

    # -------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        self._check_fitted()
        return self._envelope({"method": self.method, "params": None if self.params is None else _encode(dict(self.params))},
                              {"n_labels_": self.n_labels_, "calibrators_": [c.to_dict() for c in self.calibrators_]})

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibrator") -> MultiLabelCalibrator:
        """A fitted MultiLabelCalibrator from a saved dict; every field checked first (InputError naming it)."""
        where = cls._open_saved(d, source)
        top = decode_fields({"method": Choice(*METHODS), "params": _ParamsField()}, d["params"],
                            where.key("params"), {})
        klass = _REGISTRY[top["method"]]
        sub = _decode_sub_params(klass, top["params"], where.key("params").key("params"))
        state = d["state"]
        wstate = where.key("state")
        unknown = [k for k in state if k not in ("n_labels_", "calibrators_")]
        if unknown:
            raise InputError(f"{wstate.key(unknown[0])}: unknown field (known: n_labels_, calibrators_); remove it")
        n_labels = Number(integer=True, ge=1).decode(state.get("n_labels_"), wstate.key("n_labels_"), {})
        items = state.get("calibrators_")
        if not isinstance(items, list) or len(items) != n_labels:
            got = f"a list of {len(items)}" if isinstance(items, list) else type(items).__name__
            raise InputError(f"{wstate.key('calibrators_')}: expected a list of {n_labels} calibrators "
                             f"(one per label), got {got}")
        cals = []
        for j, item in enumerate(items):
            loc = wstate.key("calibrators_").index(j)
            cal = Calibrator.from_dict(item, str(loc))
            if type(cal) is not klass or cal.n_classes_ != 2:
                raise InputError(f"{loc}: expected a binary {klass.__name__} (method {top['method']!r}), got "
                                 f"{type(cal).__name__} on {cal.n_classes_} classes")
            cals.append(cal)
        obj = cls(method=top["method"], params=None if top["params"] is None else sub)
        obj.calibrators_ = cals
        obj.n_labels_ = int(n_labels)
        return obj


class _ParamsField(Field):
    """The binary calibrator's hyperparameters: null or an object (its fields checked later)."""

    def decode(self, v, where, dims):
        if v is not None and not isinstance(v, dict):
            self.fail(where, type(v).__name__, "null or an object of hyperparameters")
        return v


def _decode_sub_params(klass, params, where: Loc) -> dict:
    """The hyperparameters given (a subset of the binary calibrator's), each checked by its schema."""
    if params is None:
        return {}
    schema = klass.param_schema or {}
    unknown = [k for k in params if k not in schema]
    if unknown:
        raise InputError(f"{where.key(unknown[0])}: not a hyperparameter of {klass.__name__} "
                         f"(known: {', '.join(schema) or 'none'}); remove it")
    return {k: schema[k].decode(v, where.key(k), {}) for k, v in params.items()}
