"""Every calibrator keeps scikit-learn's estimator contract; string labels via classes_.

Run over ``available_methods()``, so a calibrator added later is covered without editing
this file. The references are scikit-learn's own: ``sklearn.base.clone``, its
``estimator_checks`` functions, ``check_is_fitted`` and ``sklearn.exceptions.NotFittedError``;
the parameters expected are read independently from each ``__init__`` signature.
"""

import inspect

import numpy as np
import pytest
import sklearn.exceptions
from conftest import make_logits
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)
from sklearn.utils.validation import check_is_fitted

import calibrate
from calibrate.calibrators import available_methods, get_calibrator
from calibrate.calibrators.base import _REGISTRY

METHODS = available_methods()


def _signature_defaults(cls):
    sig = inspect.signature(cls.__init__)
    return {p.name: p.default for p in sig.parameters.values() if p.name != "self"}


@pytest.fixture(scope="module")
def small():
    return make_logits(n=300, k=4, temperature=2.0, seed=3)


@pytest.mark.parametrize("method", METHODS)
def test_get_params_are_the_init_arguments(method):
    cal = get_calibrator(method)
    expected = _signature_defaults(type(cal))
    assert cal.get_params(deep=False) == expected
    assert cal.get_params(deep=True) == expected  # no nested estimators


@pytest.mark.parametrize("method", METHODS)
def test_init_stores_every_argument_unchanged(method):
    cls = _REGISTRY[method]
    sentinels = {name: object() for name in _signature_defaults(cls)}
    cal = cls(**sentinels)
    for name, value in sentinels.items():
        assert getattr(cal, name) is value
    assert cal.get_params() == sentinels


@pytest.mark.parametrize("method", METHODS)
def test_sklearn_estimator_checks(method):
    cal = get_calibrator(method)
    name = type(cal).__name__
    check_parameters_default_constructible(name, cal)
    check_no_attributes_set_in_init(name, cal)
    check_get_params_invariance(name, cal)
    check_set_params(name, cal)


@pytest.mark.parametrize("method", METHODS)
def test_clone_gives_an_unfitted_copy_with_equal_params(method, small):
    cal = get_calibrator(method).fit(*small)
    c = clone(cal)
    assert type(c) is type(cal) and c is not cal
    assert c.get_params() == cal.get_params()
    assert not c.is_fitted()
    with pytest.raises(sklearn.exceptions.NotFittedError):
        c.predict_proba(small[0])
    np.testing.assert_array_equal(c.fit(*small).predict_proba(small[0]), cal.predict_proba(small[0]))


@pytest.mark.parametrize("method", METHODS)
def test_set_params_changes_the_fit(method):
    cal = get_calibrator(method)
    name = next(iter(_signature_defaults(type(cal))))
    assert cal.set_params(**{name: "x"}) is cal and getattr(cal, name) == "x"
    with pytest.raises(ValueError, match="Invalid parameter"):
        cal.set_params(no_such_parameter=1)


@pytest.mark.parametrize("method", METHODS)
def test_unfitted_use_raises_sklearns_not_fitted_error(method, tmp_path):
    cal = get_calibrator(method)
    assert issubclass(calibrate.NotFittedError, sklearn.exceptions.NotFittedError)
    for call in (lambda: cal.predict_proba(np.zeros((2, 3))), lambda: cal.predict(np.zeros((2, 3))),
                 lambda: cal.save(tmp_path / "c.json"), lambda: check_is_fitted(cal)):
        with pytest.raises(sklearn.exceptions.NotFittedError):
            call()


@pytest.mark.parametrize("method", METHODS)
def test_check_is_fitted_passes_after_fit(method, small):
    check_is_fitted(get_calibrator(method).fit(*small))


# ------------------------------------------------------------------ labels of any kind
NAMES = np.array(["ant", "bee", "cat", "dog"])


@pytest.mark.parametrize("method", METHODS)
def test_string_labels_equal_their_integer_codes(method, small, tmp_path):
    z, y = small
    # the names are sorted, so np.unique maps "ant" -> 0, ..., "dog" -> 3: the same columns
    by_name = get_calibrator(method).fit(z, NAMES[y].tolist())  # a plain list of str
    by_code = get_calibrator(method).fit(z, y)
    assert list(by_name.classes_) == list(NAMES)
    np.testing.assert_array_equal(by_name.predict_proba(z), by_code.predict_proba(z))
    assert list(by_name.predict(z)) == list(NAMES[by_code.predict(z)])
    by_name.save(tmp_path / "c.json")
    loaded = calibrate.load(tmp_path / "c.json")
    assert list(loaded.classes_) == list(NAMES)
    assert list(loaded.predict(z)) == list(by_name.predict(z))


def test_labels_are_mapped_in_sorted_order():
    z, y = make_logits(n=300, k=3, temperature=2.0, seed=4)
    names = np.array(["zebra", "apple", "mango"])  # sorted: apple, mango, zebra
    order = np.argsort(names)  # column j means the j-th smallest name
    cal = calibrate.TemperatureScaling().fit(z[:, order], names[y])
    ref = calibrate.TemperatureScaling().fit(z, y)
    assert cal.temperature_ == pytest.approx(ref.temperature_, rel=1e-12)
    assert list(cal.classes_) == ["apple", "mango", "zebra"]


def test_binary_minus_one_plus_one_labels():
    z, y = make_logits(n=400, k=2, temperature=2.0, seed=5)
    cal = calibrate.PlattScaling().fit(z, np.where(y == 1, 1, -1))
    ref = calibrate.PlattScaling().fit(z, y)
    assert list(cal.classes_) == [-1, 1]
    np.testing.assert_array_equal(cal.a_, ref.a_)
    assert set(np.unique(cal.predict(z))) <= {-1, 1}


def test_integer_labels_keep_their_columns_when_a_class_is_absent():
    z, y = make_logits(n=300, k=4, temperature=2.0, seed=6)
    y[y == 2] = 0
    cal = calibrate.TemperatureScaling().fit(z, y)
    assert list(cal.classes_) == [0, 1, 2, 3]
    assert cal.predict(z).dtype.kind in "iu"


@pytest.mark.parametrize("labels, match", [
    (["a", "b", "a"] * 100, "expected 4 distinct labels"),
    (["a", "b", "c", "d", "e"] * 60, "expected 4 distinct labels"),
    ([1, "a", 2] * 100, "mixed types|expected 4 distinct"),
])
def test_labels_that_do_not_match_the_columns_are_one_clear_error(labels, match, small):
    with pytest.raises(calibrate.InputError, match=match):
        calibrate.TemperatureScaling().fit(small[0], labels)


def test_wrong_number_of_labels(small):
    with pytest.raises(calibrate.InputError, match="expected 300 labels"):
        calibrate.TemperatureScaling().fit(small[0], NAMES[small[1]][:-1])


def test_platt_summary_names_the_binary_coefficients():
    z, y = make_logits(n=400, k=2, temperature=2.0, seed=7)
    cal = calibrate.PlattScaling().fit(z, y)
    assert cal.summary() == {"a": cal.a_[0], "b": cal.b_[0]}
    z, y = make_logits(n=400, k=3, temperature=2.0, seed=7)
    assert set(calibrate.PlattScaling().fit(z, y).summary()) == {"mean a", "mean b"}


def test_out_of_range_integer_labels_keep_the_index_message(small):
    y = small[1].copy()
    y[y == 3] = 0
    y[7] = 9  # four distinct values would be mapped; three plus an out-of-range index are not
    y[y == 2] = 1
    with pytest.raises(calibrate.InputError, match=r"class indices in \[0, 4\)"):
        calibrate.TemperatureScaling().fit(small[0], y)


def test_one_based_integer_labels_are_mapped_like_np_unique(small):
    z, y = small
    cal = calibrate.TemperatureScaling().fit(z, y + 1)
    assert list(cal.classes_) == [1, 2, 3, 4]
    assert cal.temperature_ == calibrate.TemperatureScaling().fit(z, y).temperature_
