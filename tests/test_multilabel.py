"""Multi-label metrics and per-label calibrators: column by column against the binary functions."""

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import brier_score_loss, log_loss

from calibrate._core.validation import InputError
from calibrate.calibrators import (
    BetaCalibration,
    IsotonicCalibration,
    PlattScaling,
    TemperatureScaling,
)
from calibrate.calibrators.base import NotFittedError
from calibrate.calibrators.multilabel import MultiLabelCalibrator
from calibrate.metrics import ece_from_confidences, nll, nll_from_logits
from calibrate.metrics.multilabel import (
    multilabel_brier,
    multilabel_ece,
    multilabel_metrics,
    multilabel_nll,
    sigmoid,
    worst_labels,
)


def _data(n=400, L=5, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, L)) * np.linspace(1.0, 3.0, L)
    slope = np.linspace(0.4, 1.2, L)
    y = (rng.uniform(size=(n, L)) < 1 / (1 + np.exp(-slope * z))).astype(int)
    return z, y


def test_per_label_ece_equals_the_binary_function_column_by_column():
    z, y = _data()
    p = sigmoid(z)
    got = multilabel_ece(p, y, kind="probs", average=None)
    want = [ece_from_confidences(p[:, j], y[:, j], 15) for j in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_per_label_ece_equal_mass_bins():
    z, y = _data(seed=1)
    p = sigmoid(z)
    got = multilabel_ece(p, y, kind="probs", n_bins=10, binning="mass", average=None)
    want = [ece_from_confidences(p[:, j], y[:, j], 10, binning="mass") for j in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_per_label_brier_equals_scikit_learn():
    z, y = _data(seed=2)
    p = sigmoid(z)
    got = multilabel_brier(z, y, kind="logits", average=None)
    np.testing.assert_allclose(got, [brier_score_loss(y[:, j], p[:, j]) for j in range(5)], rtol=1e-12)


def test_per_label_nll_equals_the_binary_nll():
    z, y = _data(seed=3)
    p = sigmoid(z)
    from_logits = multilabel_nll(z, y, kind="logits", average=None)
    from_probs = multilabel_nll(p, y, kind="probs", average=None)
    np.testing.assert_allclose(from_logits, [nll_from_logits(z[:, j], y[:, j]) for j in range(5)], rtol=1e-12)
    np.testing.assert_allclose(from_probs, [nll(p[:, j], y[:, j]) for j in range(5)], rtol=1e-12)
    np.testing.assert_allclose(from_probs, [log_loss(y[:, j], p[:, j]) for j in range(5)], rtol=1e-9)


def test_micro_equals_the_flattened_computation():
    z, y = _data(seed=4)
    p = sigmoid(z)
    assert multilabel_ece(p, y, kind="probs", average="micro") == pytest.approx(
        ece_from_confidences(p.ravel(), y.ravel(), 15), rel=1e-12)
    assert multilabel_brier(p, y, kind="probs", average="micro") == pytest.approx(
        brier_score_loss(y.ravel(), p.ravel()), rel=1e-12)
    assert multilabel_nll(z, y, kind="logits", average="micro") == pytest.approx(
        nll_from_logits(z.ravel(), y.ravel()), rel=1e-12)


def test_macro_is_the_mean_over_labels():
    z, y = _data(seed=5)
    for f in (multilabel_ece, multilabel_brier, multilabel_nll):
        assert f(z, y, kind="logits") == pytest.approx(f(z, y, kind="logits", average=None).mean(), rel=1e-14)


def test_metrics_dict_and_worst_labels():
    z, y = _data(seed=6)
    m = multilabel_metrics(z, y, kind="logits", label_names=list("abcde"))
    np.testing.assert_allclose(m["per_label"]["ece"], multilabel_ece(z, y, kind="logits", average=None), rtol=1e-14)
    assert m["micro"]["nll"] == pytest.approx(multilabel_nll(z, y, kind="logits", average="micro"), rel=1e-14)
    assert m["macro"]["brier"] == pytest.approx(multilabel_brier(z, y, kind="logits"), rel=1e-14)
    worst = worst_labels(m, "ece", k=2)
    i = int(np.argmax(m["per_label"]["ece"]))
    assert worst[0] == ("abcde"[i], m["per_label"]["ece"][i])
    np.testing.assert_allclose(m["prevalence"], y.mean(axis=0))


def test_per_label_ece_equals_a_loop_over_bins():
    z, y = _data(200, 2, seed=7)
    p = sigmoid(z)
    got = multilabel_ece(p, y, kind="probs", n_bins=10, average=None)
    for j in range(2):
        total = 0.0
        for b in range(10):
            lo, hi = b / 10, (b + 1) / 10
            rows = [i for i in range(200) if lo < p[i, j] <= hi or (b == 0 and p[i, j] == 0)]
            if rows:
                total += len(rows) / 200 * abs(np.mean(y[rows, j]) - np.mean(p[rows, j]))
        assert got[j] == pytest.approx(total, rel=1e-12)


def test_kind_is_required():
    z, y = _data(20)
    with pytest.raises(TypeError):
        multilabel_ece(z, y)  # kind= is missing


@pytest.mark.parametrize("labels, match", [
    (np.zeros(20), "indicator matrix"),
    (np.zeros((20, 4)), "shape"),
    (np.full((20, 5), 2), "0 or 1"),
])
def test_invalid_indicator_labels_are_refused(labels, match):
    z, _ = _data(20)
    with pytest.raises(InputError, match=match):
        multilabel_ece(z, labels, kind="logits")


def test_logits_given_as_probs_are_refused():
    z, y = _data(20)
    with pytest.raises(InputError, match="kind='logits'"):
        multilabel_brier(z, y, kind="probs")


def test_sparse_indicator_is_accepted():
    sparse = pytest.importorskip("scipy.sparse")
    z, y = _data(50, seed=8)
    assert multilabel_nll(z, sparse.csr_matrix(y), kind="logits") == multilabel_nll(z, y, kind="logits")


# ----------------------------------------------------------------------------- calibrators
BINARY = {"platt": PlattScaling, "temperature": TemperatureScaling, "isotonic": IsotonicCalibration,
          "beta": BetaCalibration}


@pytest.mark.parametrize("method", sorted(BINARY))
def test_each_label_equals_its_binary_calibrator(method):
    z, y = _data(300, 3, seed=9)
    cal = MultiLabelCalibrator(method).fit(z, y, kind="logits")
    got = cal.predict_proba(z, kind="logits")
    assert got.shape == (300, 3)
    for j in range(3):
        one = BINARY[method]().fit(z[:, j], y[:, j], kind="logits")
        np.testing.assert_array_equal(got[:, j], one.predict_proba(z[:, j], kind="logits")[:, 1])


def test_probabilities_in_give_the_same_fit_as_their_logits():
    z, y = _data(300, 3, seed=10)
    p = sigmoid(z)
    a = MultiLabelCalibrator("platt").fit(z, y, kind="logits").predict_proba(z, kind="logits")
    b = MultiLabelCalibrator("platt").fit(p, y, kind="probs").predict_proba(p, kind="probs")
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method, params", [("temperature", {"bounds": (0.05, 20.0)}), ("beta", None),
                                            ("isotonic", {"min_prob": 1e-4}), ("platt", {})])
def test_save_load_round_trip_predicts_the_same_bits(tmp_path, method, params):
    z, y = _data(200, 4, seed=11)
    cal = MultiLabelCalibrator(method, params).fit(z, y, kind="logits")
    path = tmp_path / "ml.json"
    cal.save(path)
    back = MultiLabelCalibrator.load(path)
    assert back.get_params() == cal.get_params()
    np.testing.assert_array_equal(back.predict_proba(z, kind="logits"), cal.predict_proba(z, kind="logits"))


def test_load_refuses_a_tampered_file():
    z, y = _data(100, 2, seed=12)
    d = json.loads(MultiLabelCalibrator("platt").fit(z, y, kind="logits").to_json())
    d["state"]["calibrators_"] = d["state"]["calibrators_"][:1]
    with pytest.raises(InputError, match="calibrators_"):
        MultiLabelCalibrator.from_dict(d, "f.json")
    d = json.loads(MultiLabelCalibrator("platt").fit(z, y, kind="logits").to_json())
    d["params"]["params"] = {"bounds": [1, 2]}
    with pytest.raises(InputError, match="not a hyperparameter"):
        MultiLabelCalibrator.from_dict(d, "f.json")


def test_clone_and_get_params():
    cal = MultiLabelCalibrator("temperature", {"bounds": (0.01, 100.0)})
    assert cal.get_params() == {"method": "temperature", "params": {"bounds": (0.01, 100.0)}}
    z, y = _data(100, 2, seed=13)
    cal.fit(z, y, kind="logits")
    c = clone(cal)
    assert c.get_params() == cal.get_params() and not hasattr(c, "calibrators_")
    assert c.fit(z, y, kind="logits") is c


def test_unfitted_use_and_bad_method_are_refused():
    z, y = _data(50, 2)
    with pytest.raises(NotFittedError):
        MultiLabelCalibrator().predict_proba(z, kind="logits")
    with pytest.raises(InputError, match="method"):
        MultiLabelCalibrator("matrix").fit(z, y, kind="logits")
    with pytest.raises(InputError, match="hyperparameter"):
        MultiLabelCalibrator("platt", {"bins": 3}).fit(z, y, kind="logits")


def test_wrong_number_of_label_columns_is_refused():
    z, y = _data(50, 3)
    cal = MultiLabelCalibrator().fit(z, y, kind="logits")
    with pytest.raises(InputError, match="3 label columns"):
        cal.predict_proba(z[:, :2], kind="logits")


def test_calibration_lowers_the_per_label_ece():
    z, y = _data(4000, 3, seed=14)
    cal = MultiLabelCalibrator("platt").fit(z[:2000], y[:2000], kind="logits")
    before = multilabel_ece(z[2000:], y[2000:], kind="logits")
    after = multilabel_ece(cal.predict_proba(z[2000:], kind="logits"), y[2000:], kind="probs")
    assert after < before / 2
