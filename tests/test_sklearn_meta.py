"""calibrate.CalibratedClassifier against scikit-learn: its CalibratedClassifierCV (sigmoid),
cross_val_predict + a calibrator by hand, and its Pipeline / GridSearchCV / scorers."""

import numpy as np
import pytest
import sklearn.exceptions
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits, load_wine, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

import calibrate
from calibrate import CalibratedClassifier
from calibrate.calibrators import available_methods


@pytest.fixture(scope="module")
def binary():
    return make_classification(n_samples=400, n_features=8, n_informative=4, random_state=0)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _cv():
    return StratifiedKFold(5, shuffle=True, random_state=0)


def test_default_is_cross_fitted_temperature_on_out_of_fold_logits(wine):
    X, y = wine
    est = LogisticRegression(C=0.05, max_iter=1000)
    clf = CalibratedClassifier(est, cv=_cv()).fit(X, y)
    # by hand: out-of-fold decision values, one temperature on them, the classifier refitted
    z = cross_val_predict(est, X, y, cv=_cv(), method="decision_function")
    t = calibrate.TemperatureScaling().fit(z, y)
    full = clone(est).fit(X, y)
    assert clf.calibrators_[0].temperature_ == pytest.approx(t.temperature_, rel=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X), t.predict_proba(full.decision_function(X)), rtol=1e-12)
    assert len(clf.estimators_) == 1 and clf.response_ == "decision_function"


def test_ensemble_averages_one_calibrated_pair_per_split(wine):
    X, y = wine
    est = LogisticRegression(C=0.05, max_iter=1000)
    clf = CalibratedClassifier(est, cv=_cv(), ensemble=True).fit(X, y)
    ref = np.zeros((len(y), 3))
    for train, test in _cv().split(X, y):
        e = clone(est).fit(X[train], y[train])
        c = calibrate.TemperatureScaling(bounds=(0.05, 100.0)).fit(e.decision_function(X[test]), y[test])
        ref += c.predict_proba(e.decision_function(X)) / 5
    np.testing.assert_allclose(clf.predict_proba(X), ref, rtol=1e-12)
    assert len(clf.calibrators_) == 5


@pytest.mark.parametrize("ensemble", [False, True])
def test_binary_platt_equals_sklearn_sigmoid_calibration(binary, ensemble):
    X, y = binary
    est = LinearSVC(C=0.1)
    ours = CalibratedClassifier(est, method="platt", cv=_cv(), ensemble=ensemble).fit(X, y)
    ref = CalibratedClassifierCV(est, method="sigmoid", cv=_cv(), ensemble=ensemble).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_prefit_equals_sklearn_on_a_frozen_estimator(binary):
    FrozenEstimator = pytest.importorskip("sklearn.frozen").FrozenEstimator  # scikit-learn >= 1.6
    X, y = binary
    est = LinearSVC(C=0.1).fit(X[:200], y[:200])
    ours = CalibratedClassifier(est, method="platt", cv="prefit").fit(X[200:], y[200:])
    ref = CalibratedClassifierCV(FrozenEstimator(est), method="sigmoid").fit(X[200:], y[200:])
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert ours.estimators_[0] is est  # used as it is, not refitted


def test_predict_proba_only_classifier_uses_log_probabilities():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    clf = CalibratedClassifier(GaussianNB(), cv=_cv()).fit(X, y)
    p = cross_val_predict(GaussianNB(), X, y, cv=_cv(), method="predict_proba")
    assert (p == 0).any()  # GaussianNB's probabilities underflow on digits
    z = np.log(np.maximum(p, np.finfo(np.float64).tiny))
    t = calibrate.TemperatureScaling().fit(z, y)
    assert clf.response_ == "predict_proba"
    assert clf.calibrators_[0].temperature_ == pytest.approx(t.temperature_, rel=1e-12)


class ProbaOnly(ClassifierMixin, BaseEstimator):
    """A decision tree with predict_proba only (no decision_function, no predict_log_proba)."""

    def __init__(self, max_depth=None):
        self.max_depth = max_depth

    def fit(self, X, y):
        self.tree_ = DecisionTreeClassifier(max_depth=self.max_depth, random_state=0).fit(X, y)
        self.classes_ = self.tree_.classes_
        return self

    def predict_proba(self, X):
        return self.tree_.predict_proba(X)

    def predict(self, X):
        return self.tree_.predict(X)


def test_log_of_predict_proba_is_clipped_away_from_zero(wine):
    X, y = wine
    est = ProbaOnly(max_depth=3)  # leaves of one class: probabilities exactly 0
    assert not hasattr(est, "decision_function") and not hasattr(est, "predict_log_proba")
    clf = CalibratedClassifier(est, cv=_cv(), calibrator_params={"bounds": None}).fit(X, y)
    p = cross_val_predict(DecisionTreeClassifier(max_depth=3, random_state=0), X, y, cv=_cv(), method="predict_proba")
    assert (p == 0).any()
    z = np.log(np.maximum(p, np.finfo(np.float64).tiny))
    t = calibrate.TemperatureScaling().fit(z, y)
    assert clf.calibrators_[0].temperature_ == pytest.approx(t.temperature_, rel=1e-12)
    assert np.isfinite(clf.predict_log_proba(X)).all()


@pytest.mark.parametrize("method", available_methods())
def test_every_method_gives_probabilities(method, wine):
    X, y = wine
    clf = CalibratedClassifier(LogisticRegression(max_iter=1000), method=method, cv=3).fit(X, y)
    p = clf.predict_proba(X)
    assert p.shape == (len(y), 3)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-12)
    assert np.array_equal(clf.predict(X), clf.classes_[p.argmax(1)])


def test_string_labels(wine):
    X, y = wine
    names = np.array(["barolo", "grignolino", "barbera"])
    clf = CalibratedClassifier(LogisticRegression(max_iter=1000), cv=_cv()).fit(X, names[y])
    ref = CalibratedClassifier(LogisticRegression(max_iter=1000), cv=_cv()).fit(X, y)
    assert list(clf.classes_) == sorted(names)
    order = np.argsort(names)  # column j of clf is the j-th smallest name
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X)[:, order], rtol=1e-10)
    assert set(clf.predict(X)) <= set(names)
    assert log_loss(names[y], clf.predict_proba(X), labels=clf.classes_) == pytest.approx(
        log_loss(y, ref.predict_proba(X)), rel=1e-10)


def test_pipeline_grid_search_and_cross_val_score(wine):
    X, y = wine
    pipe = make_pipeline(StandardScaler(), CalibratedClassifier(LogisticRegression(max_iter=1000), cv=3))
    scores = cross_val_score(pipe, X, y, cv=KFold(3, shuffle=True, random_state=1), scoring="neg_log_loss")
    ref = []
    for train, test in KFold(3, shuffle=True, random_state=1).split(X):
        p = clone(pipe).fit(X[train], y[train]).predict_proba(X[test])
        ref.append(-log_loss(y[test], p, labels=[0, 1, 2]))
    np.testing.assert_allclose(scores, ref, rtol=1e-12)
    grid = GridSearchCV(pipe, {"calibratedclassifier__estimator__C": [0.01, 1.0],
                               "calibratedclassifier__calibrator_params": [None, {"objective": "ece"}]},
                        cv=3, scoring="neg_log_loss").fit(X, y)
    assert set(grid.best_params_) == {"calibratedclassifier__estimator__C", "calibratedclassifier__calibrator_params"}
    assert grid.predict_proba(X).shape == (len(y), 3)


def test_nested_calibrator_params(wine):
    X, y = wine
    clf = CalibratedClassifier(LogisticRegression(max_iter=1000), method=calibrate.HistogramBinning(), cv=3)
    params = clf.get_params(deep=True)
    assert params["method__n_bins"] == 15 and params["estimator__C"] == 1.0
    clf.set_params(method__n_bins=4)
    clf.fit(X, y)
    assert clf.calibrators_[0].n_bins == 4 and len(clf.calibrators_[0].maps_[0]["values"]) == 4
    assert clf.method.n_bins == 4 and not clf.method.is_fitted()  # the template is not fitted
    grid = GridSearchCV(clf, {"method__n_bins": [3, 6]}, cv=3, scoring="neg_log_loss").fit(X, y)
    assert grid.best_params_["method__n_bins"] in (3, 6)


def test_calibrator_params_reach_the_calibrator(wine):
    X, y = wine
    clf = CalibratedClassifier(LogisticRegression(max_iter=1000), calibrator_params={"bounds": (3.0, 4.0)}).fit(X, y)
    assert 3.0 <= clf.calibrators_[0].temperature_ <= 4.0


def test_clone_and_not_fitted(wine):
    clf = CalibratedClassifier(LogisticRegression(C=0.3), method="platt", cv=4)
    c = clone(clf)
    assert c.get_params(deep=False) == {**clf.get_params(deep=False), "estimator": c.estimator}
    assert c.estimator is not clf.estimator and c.estimator.C == 0.3
    with pytest.raises(sklearn.exceptions.NotFittedError):
        c.predict_proba(wine[0])
    with pytest.raises(calibrate.NotFittedError):
        c.predict(wine[0])


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "nope"}, "method: expected a calibrator or one of"),
    ({"calibrator_params": {"T": 2}}, "temperature has no parameter 'T'"),
    ({"cv": 60}, "needs at least 60 rows of every class"),
    ({"response": "predict"}, "response: expected one of"),
])
def test_bad_settings_are_one_clear_error(kwargs, match, wine):
    with pytest.raises(calibrate.InputError, match=match):
        CalibratedClassifier(LogisticRegression(max_iter=1000), **kwargs).fit(*wine)


def test_splits_that_are_not_a_partition_are_refused_without_ensemble(wine):
    X, y = wine
    half = np.arange(len(y)) % 2 == 0
    splits = [(np.flatnonzero(half), np.flatnonzero(~half))]
    with pytest.raises(calibrate.InputError, match="exactly one test fold"):
        CalibratedClassifier(LogisticRegression(max_iter=1000), cv=splits).fit(X, y)
    clf = CalibratedClassifier(LogisticRegression(max_iter=1000), cv=splits, ensemble=True).fit(X, y)
    assert len(clf.calibrators_) == 1


def test_a_fold_missing_a_class_is_one_clear_error(wine):
    X, y = wine
    order = np.argsort(y, kind="stable")  # unshuffled KFold on sorted labels: a fold lacks class 0
    with pytest.raises(calibrate.InputError, match="saw 2 of 3 classes"):
        CalibratedClassifier(LogisticRegression(max_iter=1000), cv=KFold(3)).fit(X[order], y[order])


def test_prefit_rejects_unknown_labels(binary):
    X, y = binary
    est = LogisticRegression().fit(X, y)
    with pytest.raises(calibrate.InputError, match="not one of the fitted classifier's classes_"):
        CalibratedClassifier(est, cv="prefit").fit(X, y + 5)


def test_the_readme_example_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("### scikit-learn", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    env = {}
    exec(compile(code, "README.md", "exec"), env)
    clf, X = env["clf"], env["X"]
    p = clf.predict_proba(X[:3])
    assert p.shape == (3, 10) and np.allclose(p.sum(1), 1)


# scikit-learn's own estimator checks (input validation, clone, pickling, idempotent fit, ...)
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks([CalibratedClassifier(LogisticRegression(), cv=2)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
