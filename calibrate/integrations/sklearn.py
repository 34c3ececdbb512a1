"""Calibrate any scikit-learn classifier with this package's calibrators.

    clf = calibrate.CalibratedClassifier(LinearSVC(), method="temperature", cv=5).fit(X, y)
    clf.predict_proba(X_test)          # (n, k) calibrated probabilities, columns = clf.classes_

A scikit-learn estimator (``fit`` / ``predict`` / ``predict_proba`` / ``classes_``), so it
works in ``Pipeline``, ``GridSearchCV`` and ``cross_val_score(scoring="neg_log_loss")``
and ``sklearn.base.clone``.

Logits: ``decision_function`` when the classifier has one (binary scores s of shape (n,)
become logits [0, s]), else the log of ``predict_proba`` (float64; a probability of
exactly 0 is clipped to the smallest positive float64, so log 0 becomes -708, not -inf). The order mirrors
scikit-learn's ``CalibratedClassifierCV``; ``response=`` picks one explicitly. A classifier
whose probabilities are often exactly 0 (a random forest) is a poor match for the scaling
calibrators on log-probabilities; ``method="isotonic"`` works on the probabilities.

Cross-fitting (``cv`` an int, None (= 5), a splitter or an iterable of (train, test)):

- ``ensemble=False`` (the default): the logits of every row come from a clone fitted
  without that row (``cross_val_predict``'s out-of-fold predictions); ONE calibrator is
  fitted on all n out-of-fold logits, and the classifier is refitted on all the data.
  ``CalibratedClassifierCV(ensemble=False)`` does the same. We default to it because a
  temperature (or any calibrator) fitted on n rows is better determined than k fitted on
  n / cv rows each, and prediction costs one classifier, not cv of them.
- ``ensemble=True``: per split, a clone fitted on the training part and a calibrator on
  the test part; ``predict_proba`` averages the cv calibrated probabilities
  (``CalibratedClassifierCV``'s default, ``ensemble=True``).
- ``cv="prefit"``: the classifier is already fitted; ``fit(X, y)`` fits only the
  calibrator, on (X, y), which must not be the classifier's training data.

With an integer cv the folds are stratified (``StratifiedKFold``, as scikit-learn does for
classifiers), and every class needs at least cv rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _num_samples, check_is_fitted, column_or_1d, indexable

from calibrate._core.validation import InputError, check_choice
from calibrate.calibrators.base import _REGISTRY, Calibrator, NotFittedError, get_calibrator

_TINY = np.finfo(np.float64).tiny
RESPONSES = ("auto", "decision_function", "predict_proba")


def classifier_logits(estimator, X, response: str = "auto") -> tuple[np.ndarray, str]:
    """(logits (n, k) float64, the method used) of a fitted scikit-learn classifier.

    Columns follow ``estimator.classes_``. "auto": ``decision_function`` if the estimator
    has it, else ``log(predict_proba)`` in float64 with probabilities clipped below at the
    smallest positive float64 (tiny = 2.2e-308, log tiny = -708).
    """
    check_choice(response, "response", RESPONSES)
    k = len(estimator.classes_)
    use_df = response == "decision_function" or (response == "auto" and hasattr(estimator, "decision_function"))
    if use_df:
        s = np.asarray(estimator.decision_function(X), dtype=np.float64)
        if s.ndim == 1:
            if k != 2:
                raise InputError(f"decision_function: returned (n,) scores for {k} classes; use response='predict_proba'")
            s = np.stack([np.zeros_like(s), s], axis=1)
        method = "decision_function"
    else:
        if not hasattr(estimator, "predict_proba"):
            raise InputError(f"estimator: {type(estimator).__name__} has neither decision_function nor predict_proba")
        p = np.asarray(estimator.predict_proba(X), dtype=np.float64)
        s = np.log(np.maximum(p, _TINY))
        method = "predict_proba"
    if s.ndim != 2 or s.shape[1] != k:
        raise InputError(
            f"{method}: expected scores of shape (n, {k}), one column per class, got {s.shape}; "
            "try response='predict_proba'"
        )
    return s, method


class CalibratedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """A scikit-learn classifier whose probabilities are calibrated by a post-hoc calibrator.

    estimator: any scikit-learn classifier (or Pipeline ending in one); cloned, never
        modified, except with cv="prefit", where it is used as it is.
    method: a method name ("temperature", "vector", "matrix", "platt", "isotonic",
        "histogram", "bbq", ...; see ``calibrate.calibrators.available_methods()``) or an
        unfitted :class:`calibrate.Calibrator` instance (then its parameters are nested:
        ``method__bounds``, tunable by ``GridSearchCV``).
    cv: int, None (5), a CV splitter, an iterable of (train, test) index arrays, or
        "prefit". See the module docstring for the cross-fitting semantics.
    calibrator_params: dict of the calibrator's parameters (with a method name).
    ensemble: False (one calibrator on out-of-fold logits, classifier refitted on all the
        data) or True (one classifier + calibrator per split, probabilities averaged).
    response: "auto", "decision_function" or "predict_proba": where the logits come from.

    Fitted: classes_ (k,) the sorted labels, estimators_ and calibrators_ (lists, one pair
    per split with ensemble=True, else one), response_ (the method used), n_features_in_
    when the classifier has it.
    """

    def __init__(self, estimator, method="temperature", cv=5, *, calibrator_params=None,
                 ensemble=False, response="auto"):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.calibrator_params = calibrator_params
        self.ensemble = ensemble
        self.response = response

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, **fit_params):
        """Fit the classifier(s) and the calibrator(s) on X (n, ...) and labels y (n,). Returns self.

        fit_params go to the classifier's ``fit`` (arrays of length n are split with the rows).
        """
        check_choice(self.response, "response", RESPONSES)
        template = self._calibrator_template()
        if y is None:
            raise InputError("y: CalibratedClassifier requires y to be passed, but the target y is None")
        X, y = indexable(X, y)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        n = _num_samples(X)
        if y.shape[0] != n:
            raise InputError(f"y: expected {n} labels (one per row of X), got {y.shape[0]}")
        if isinstance(self.cv, str) and self.cv == "prefit":
            return self._fit_prefit(X, y, template)
        classes, y_idx = np.unique(y, return_inverse=True)
        y_idx = y_idx.reshape(-1)
        if classes.size < 2:
            raise InputError(f"y: expected at least 2 classes, got 1 class: {classes[:1].tolist()}")
        self.classes_ = classes
        k = classes.size
        if self.cv is None or isinstance(self.cv, (int, np.integer)):
            folds = 5 if self.cv is None else int(self.cv)
            counts = np.bincount(y_idx)
            if counts.min() < folds:
                raise InputError(
                    f"cv: {folds}-fold cross-fitting needs at least {folds} rows of every class, "
                    f"got {counts.min()} of class {classes[counts.argmin()]!r}"
                )
        splits = list(check_cv(self.cv, y, classifier=True).split(X, y))
        estimators, calibrators = [], []
        oof = np.zeros((n, k)) if not self.ensemble else None
        covered = np.zeros(n, dtype=np.int64)
        for i, (train, test) in enumerate(splits):
            est = clone(self.estimator).fit(_safe_indexing(X, train), y[train], **_rows(fit_params, train, n))
            z = self._logits(est, _safe_indexing(X, test), f"split {i}")
            covered[test] += 1
            if self.ensemble:
                estimators.append(est)
                calibrators.append(clone(template).fit(z, y_idx[test]))
            else:
                oof[test] = z
        if not self.ensemble:
            if not np.all(covered == 1):
                raise InputError(
                    "cv: with ensemble=False every row must be in exactly one test fold (a partition), "
                    f"got {int((covered == 0).sum())} rows in none and {int((covered > 1).sum())} in several"
                )
            calibrators.append(clone(template).fit(oof, y_idx))
            estimators.append(clone(self.estimator).fit(X, y, **fit_params))
            self._check_classes(estimators[0], "the final fit")
        self.estimators_ = estimators
        self.calibrators_ = calibrators
        self._set_n_features(estimators[0])
        return self

    def _fit_prefit(self, X, y, template):
        est = self.estimator
        check_is_fitted(est)
        classes = np.asarray(est.classes_)
        pos = np.searchsorted(classes, y)
        pos = np.clip(pos, 0, classes.size - 1)
        unknown = classes[pos] != y
        if unknown.any():
            raise InputError(f"y: label {y[int(np.argmax(unknown))]!r} is not one of the fitted classifier's classes_")
        self.classes_ = classes
        z = self._logits(est, X, "the prefit classifier")
        self.estimators_ = [est]
        self.calibrators_ = [clone(template).fit(z, pos)]
        self._set_n_features(est)
        return self

    def __sklearn_tags__(self):
        # what X may be (sparse, NaN, strings for a text pipeline) is the wrapped classifier's affair
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator).input_tags
        tags.input_tags.sparse = inner.sparse
        tags.input_tags.allow_nan = inner.allow_nan
        tags.input_tags.string = inner.string
        tags.input_tags.categorical = inner.categorical
        return tags

    def _check_fitted(self):
        if not hasattr(self, "calibrators_"):
            raise NotFittedError("CalibratedClassifier is not fitted yet: call fit(X, y) first")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "calibrators_")

    def _set_n_features(self, est):
        if hasattr(est, "n_features_in_"):
            self.n_features_in_ = est.n_features_in_

    def _calibrator_template(self) -> Calibrator:
        params = dict(self.calibrator_params or {})
        if isinstance(self.method, Calibrator):
            return clone(self.method).set_params(**params)
        if not isinstance(self.method, str) or self.method not in _REGISTRY:
            raise InputError(
                f"method: expected a calibrator or one of {', '.join(_REGISTRY)}, got {self.method!r}"
            )
        known = _REGISTRY[self.method]._get_param_names()
        bad = [p for p in params if p not in known]
        if bad:
            raise InputError(
                f"calibrator_params: {self.method} has no parameter {bad[0]!r}; it has {', '.join(known) or 'none'}"
            )
        if self.method == "temperature" and "bounds" not in params:
            # inside cross-validation a fold can be separable (or carry no ranking), where no
            # finite temperature minimises the NLL; the meta-estimator then fits within
            # (0.05, 100) and warns at the bound rather than failing the whole search
            params["bounds"] = (0.05, 100.0)
        return get_calibrator(self.method, **params)

    def _check_classes(self, est, where):
        got = np.asarray(est.classes_)
        if got.shape != self.classes_.shape or not np.all(got == self.classes_):
            missing = np.setdiff1d(self.classes_, got)
            raise InputError(
                f"cv: the classifier fitted on {where} saw {got.size} of {self.classes_.size} classes "
                f"(missing {_short(missing)}); use fewer folds or a stratified splitter"
            )

    def _logits(self, est, X, where) -> np.ndarray:
        self._check_classes(est, where)
        z, self.response_ = classifier_logits(est, X, self.response)
        return z

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X) -> np.ndarray:
        """(n, k) float64 calibrated probabilities, columns in the order of ``classes_``."""
        self._check_fitted()
        out = None
        for est, cal in zip(self.estimators_, self.calibrators_):
            z, _ = classifier_logits(est, X, self.response)
            p = cal.predict_proba(z)
            out = p if out is None else out + p
        return out / len(self.calibrators_)

    def predict_log_proba(self, X) -> np.ndarray:
        """(n, k) float64 log of ``predict_proba``."""
        self._check_fitted()
        if len(self.calibrators_) == 1:
            z, _ = classifier_logits(self.estimators_[0], X, self.response)
            return self.calibrators_[0].predict_log_proba(z)
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """(n,) the most probable class of each row (a label from ``classes_``)."""
        p = self.predict_proba(X)
        return self.classes_[np.argmax(p, axis=1)]


def _rows(params: dict, idx, n: int) -> dict:
    """fit_params for a subset of rows: array-likes of length n are indexed, the rest kept."""
    out = {}
    for key, v in params.items():
        if hasattr(v, "__len__") and not isinstance(v, (str, bytes, dict)) and _num_samples_or_none(v) == n:
            out[key] = _safe_indexing(v, idx)
        else:
            out[key] = v
    return out


def _num_samples_or_none(v):
    try:
        return _num_samples(v)
    except TypeError:
        return None


def _short(values, limit=5):
    items = [repr(v.item() if isinstance(v, np.generic) else v) for v in values[:limit]]
    return ", ".join(items) + (", ..." if len(values) > limit else "")
