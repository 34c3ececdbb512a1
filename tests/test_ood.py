import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp, softmax
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from calibrate import InputError
from calibrate.metrics import ood, uncertainty


def sk_metrics(s_in, s_out):
    s = np.concatenate([s_in, s_out])
    y = np.concatenate([np.ones(len(s_in)), np.zeros(len(s_out))])
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {
        "auroc": roc_auc_score(y, s),
        "aupr_in": average_precision_score(y, s),
        "aupr_out": average_precision_score(1 - y, -s),
        "fpr_at_95tpr": fpr[np.argmax(tpr >= 0.95)],
    }


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed, ties):
    rng = np.random.default_rng(seed)
    s_in = rng.normal(1.0, 1.0, 700)
    s_out = rng.normal(0.0, 1.2, 400)
    if ties:
        s_in, s_out = np.round(s_in * 3) / 3, np.round(s_out * 3) / 3
    got, exp = ood.detection_metrics(s_in, s_out), sk_metrics(s_in, s_out)
    for key in exp:
        assert got[key] == pytest.approx(exp[key], abs=1e-12), key


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 100_000), st.integers(1, 30), st.integers(1, 30))
def test_matches_sklearn_small_tied(seed, n_in, n_out):
    rng = np.random.default_rng(seed)
    s_in = rng.integers(0, 5, n_in).astype(float)
    s_out = rng.integers(0, 5, n_out).astype(float)
    got, exp = ood.detection_metrics(s_in, s_out), sk_metrics(s_in, s_out)
    for key in exp:
        assert got[key] == pytest.approx(exp[key], abs=1e-12), key
    # Mann-Whitney by a double loop
    mw = np.mean([(a > b) + 0.5 * (a == b) for a in s_in for b in s_out])
    assert got["auroc"] == pytest.approx(mw, abs=1e-12)


def test_fpr_at_tpr_brute_force():
    rng = np.random.default_rng(4)
    s_in, s_out = np.round(rng.normal(1, 1, 90), 1), np.round(rng.normal(0, 1, 60), 1)
    best = min(
        np.mean(s_out >= t) for t in np.unique(np.concatenate([s_in, s_out])) if np.mean(s_in >= t) >= 0.95
    )
    assert ood.detection_metrics(s_in, s_out)["fpr_at_95tpr"] == best
    assert ood.detection_metrics(s_in, s_out, tpr=0.8)["fpr_at_95tpr"] <= best


def test_separable_and_identical():
    m = ood.detection_metrics([2.0, 3.0], [0.0, 1.0])
    assert m == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr_at_95tpr": 0.0}
    m = ood.detection_metrics([1.0, 1.0], [1.0])
    assert m["auroc"] == 0.5 and m["fpr_at_95tpr"] == 1.0
    assert m["aupr_in"] == pytest.approx(2 / 3) and m["aupr_out"] == pytest.approx(1 / 3)


def test_misclassification_metrics():
    rng = np.random.default_rng(0)
    c = rng.random(500)
    ok = rng.random(500) < c
    assert ood.misclassification_metrics(c, ok) == ood.detection_metrics(c[ok], c[~ok])
    assert ood.misclassification_metrics(c, ok.astype(int))["auroc"] == pytest.approx(
        roc_auc_score(ok, c), abs=1e-12
    )
    with pytest.raises(InputError, match="both correct and wrong"):
        ood.misclassification_metrics(c, np.ones(500, bool))


def test_scores_from_logits_closed_forms():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(70_000, 5)) * 3  # more than one block of rows
    z32 = z.astype(np.float32)
    p = softmax(z, axis=1)
    np.testing.assert_allclose(ood.max_softmax(z), p.max(1), rtol=1e-13)
    np.testing.assert_allclose(ood.max_softmax(z, 2.0), softmax(z / 2, axis=1).max(1), rtol=1e-13)
    np.testing.assert_array_equal(ood.max_logit(z), z.max(1))
    np.testing.assert_allclose(ood.energy(z), logsumexp(z, axis=1), rtol=1e-13)
    np.testing.assert_allclose(ood.energy(z, 3.0), 3 * np.log(np.exp(z / 3).sum(1)), rtol=1e-12)
    np.testing.assert_allclose(ood.negative_entropy(z), (p * np.log(p)).sum(1), rtol=1e-10, atol=1e-14)
    g = (p**2).sum(1)
    np.testing.assert_allclose(ood.doctor(z), -(1 - g) / g, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ood.doctor(z, version="beta"), -(1 - p.max(1)) / p.max(1), rtol=1e-12, atol=1e-14)
    s = np.sort(p, 1)
    np.testing.assert_allclose(ood.softmax_margin(z), s[:, -1] - s[:, -2], atol=1e-15)
    # float32 input is computed in float64
    assert ood.energy(z32).dtype == np.float64
    np.testing.assert_allclose(ood.energy(z32), logsumexp(z32.astype(np.float64), axis=1), rtol=1e-14)
    # extreme logits stay finite
    assert np.isfinite(ood.energy(np.array([[1e4, -1e4]]))).all()
    assert ood.max_softmax(np.array([[1e4, -1e4]]))[0] == 1.0
    with pytest.raises(InputError, match="temperature"):
        ood.energy(z, 0.0)


def test_scores_from_samples():
    rng = np.random.default_rng(2)
    s = rng.normal(size=(4, 300, 3))
    d = uncertainty.uncertainty_decomposition(s)
    np.testing.assert_allclose(ood.negative_mutual_information(s), -d["mutual_information"])
    np.testing.assert_allclose(ood.negative_expected_entropy(s), -d["expected_entropy"])
    np.testing.assert_allclose(ood.negative_predictive_entropy(s), -d["predictive_entropy"])
    # closed form of the predictive entropy
    pbar = softmax(s, axis=2).mean(0)
    np.testing.assert_allclose(ood.negative_predictive_entropy(s), (pbar * np.log(pbar)).sum(1), rtol=1e-12)
    big = rng.normal(size=(3, 30_000, 2))  # row blocks of 65536 // 3
    np.testing.assert_allclose(
        ood.negative_mutual_information(big), -uncertainty.mutual_information(big), rtol=0, atol=1e-15
    )
    with pytest.raises(InputError, match="members, n, k"):
        ood.negative_mutual_information(np.ones((3, 4)))


def test_validation():
    with pytest.raises(InputError, match="scores_in: expected a non-empty 1-d"):
        ood.detection_metrics([], [1.0])
    with pytest.raises(InputError, match="scores_out: expected finite"):
        ood.detection_metrics([1.0], [np.inf])
    torch = pytest.importorskip("torch")
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([0.5])
    assert ood.detection_metrics(a, b)["auroc"] == 1.0
